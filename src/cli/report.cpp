#include "cli/report.h"

#include <iostream>
#include <sstream>

#include "cli/events.h"
#include "sdinterp/errors.h"

namespace sdinterp::cli {

std::string result_line(const nlohmann::json& r) {
  std::ostringstream line;
  line.precision(3);
  line << "wrote ";
  bool first = true;
  for (const auto& out : r.at("outputs")) {
    std::string description;
    text_from_json(out.at("description"), description);
    line << (first ? "" : ", ") << description;
    first = false;
  }
  line << ", seed " << r.at("seed").get<uint64_t>() << ", " << r.at("seconds").get<double>() << " s";
  return line.str();
}

void run_and_report(RuntimeSession& session, const RunConfig& config, const UiOptions& ui) {
  const nlohmann::json result = session.execute_job(config, ui);
  if (ui.progress == Progress::kJson) {
    emit_event("result", ui.job, result);
  } else {
    std::cout << result_line(result) << std::endl;
  }
}

std::string job_message(const std::string& source, const std::string& message) {
  if (message.rfind(source + ":", 0) == 0) return message;  // "jobs.jsonl:3: ..." or "jobs.jsonl:3:14: ..."
  return source + ": " + message;
}

void report_failure(const UiOptions& ui, const std::exception& e) {
  if (ui.progress != Progress::kJson) return;
  const auto* error = dynamic_cast<const Error*>(&e);
  const int code = error != nullptr ? error->code() : kExitInternal;
  if (code == kExitInterrupted) {
    emit_event("interrupted", ui.job, {{"exit_code", code}});
  } else {
    emit_event("error", ui.job, {{"message", text_json(e.what())}, {"exit_code", code}});
  }
}

void reporting_failures(const UiOptions& ui, const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception& e) {
    report_failure(ui, e);
    throw;
  }
}

}  // namespace sdinterp::cli
