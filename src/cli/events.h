// The JSON event stream of `--progress json`: one JSON object per stdout line, and nothing else on
// stdout. Both sides write it: the executable (results, skips, errors, interruptions, the batch
// summary) and the runtime (progress). The schema is documented in the README ("Progress for
// scripts"); kEventSchema changes when a field changes meaning or goes away.
#pragma once

#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "sdinterp/job.h"

namespace sdinterp::cli {

constexpr int kEventSchema = 1;

// Names a job in events: {"source": "jobs.jsonl:3" | "job.json" | "command line",
// "line": 3 | null, "output": "a.gif" | null, "png_dir": "frames" | null}.
inline nlohmann::json job_ref(const std::string& source, int line, const std::string& output,
                              const std::string& png_dir) {
  auto or_null = [](const std::string& s) { return s.empty() ? nlohmann::json(nullptr) : text_json(s); };
  return {{"source", text_json(source)},
          {"line", line > 0 ? nlohmann::json(line) : nlohmann::json(nullptr)},
          {"output", or_null(output)},
          {"png_dir", or_null(png_dir)}};
}

// One event line: {"schema": 1, "event": name, "job": job, ...fields}, flushed at once.
inline void emit_event(const std::string& name, const nlohmann::json& job, const nlohmann::json& fields = {}) {
  nlohmann::json line = {{"schema", kEventSchema}, {"event", name}};
  if (!job.is_null()) line["job"] = job;
  if (fields.is_object()) line.update(fields);
  std::cout << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
}

}  // namespace sdinterp::cli
