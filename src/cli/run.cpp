// `sdinterp run JOB.json` (one job, flags override the file) and `sdinterp batch JOBS.jsonl`
// (many jobs, one model load, failures reported and skipped).
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "cli/commands.h"
#include "cli/events.h"
#include "cli/interrupt.h"
#include "cli/job_flags.h"
#include "cli/report.h"
#include "io/atomic_output.h"
#include "sdinterp/errors.h"
#include "sdinterp/job.h"
#include "sdinterp/job_files.h"
#include "sdinterp/number_text.h"
#include "sdinterp/shard.h"

namespace sdinterp::cli {
namespace {

// A folder is refused by name: read as a stream it passed for an empty file (for `batch`, zero jobs
// done and exit status 0).
std::string read_job_file(const std::string& path) {
  try {
    return io::read_file(path);
  } catch (const std::system_error& e) {
    if (e.code() == std::errc::is_a_directory) throw IoError(path + ": a folder, not a job file");
    throw IoError(path + ": cannot read the job file: " + e.code().message());
  }
}

// "-" names standard input, as for most tools: jobs piped in (`make-jobs | sdinterp batch -`). It is
// read through /dev/stdin, the name messages and error records then give the lines.
constexpr const char* kStandardInput = "/dev/stdin";
std::string job_file_path(const std::string& given) { return given == "-" ? kStandardInput : given; }

struct BatchOptions {
  std::string path;
  bool skip_existing = false;
  std::string shard;    // "I/N"
  int shard_count = 0;  // Kubernetes: the number of shards
  bool status = false;
  bool json = false;
};

constexpr const char* kStrictHelp =
    "Run metadata: refuse to run when the bundle's files or the input images differ from the ones it records "
    "(default: warn)";

// Run metadata `job` (given the flags `overrides` over it): the bundle's and the input images'
// hashes it records, for the run to compare (the images' unless --image replaces them).
void expect_recorded_files(const nlohmann::json& job, const nlohmann::json& overrides, UiOptions& ui) {
  ui.expected_hashes = job["sdinterp"].value("bundle", nlohmann::json::object()).value("hashes", nlohmann::json());
  ui.expected_image_hashes =
      overrides.contains("image") ? nlohmann::json() : job["sdinterp"].value("images", nlohmann::json());
}

}  // namespace

void add_run_command(CLI::App& app, int& status) {
  CLI::App* sub = app.add_subcommand("run", "Render one job described in a JSON file (flags given here override it)");
  auto path = std::make_shared<std::string>();
  sub->add_option("job", *path,
                  "Job file (JSON object with the generate flags' names; run metadata works too; - reads it from "
                  "standard input)")
      ->required();
  auto flags = std::make_shared<JobFlags>(sub, JobFlagUse::kOverrides);
  auto ui = std::make_shared<UiOptions>();
  add_ui_flags(sub, *ui);
  sub->add_flag("--strict", ui->strict, kStrictHelp);
  sub->callback([path, flags, ui, &status] {
    *path = job_file_path(*path);
    ui->job = job_ref(*path, 0, "", "");
    reporting_failures(*ui, [&] {
      check_ui(*ui);
      RunConfig config;
      const nlohmann::json job = parse_job_object(read_job_file(*path), *path);
      apply_job(job, config, *path);
      if (is_run_metadata(job)) {
        // Piped in, run metadata has no folder of its own: its paths are the working directory's.
        if (*path != kStandardInput) resolve_metadata_paths(config, *path);
        expect_recorded_files(job, flags->given(), *ui);
      }
      apply_job(flags->given(), config, "");  // "": flags name themselves
      ui->job = job_ref(*path, 0, config.output, config.png_dir);
      try {
        run_and_report(*runtime(&config).new_session(), config, *ui);
      } catch (const ConfigError& e) {
        // A value out of range or a mode's missing prompt names the job file, as a batch line's does.
        throw ConfigError(job_message(*path, e.what()));
      }
    });
    status = 0;
  });
}

namespace {

// A job line of a batch file: its 1-based line number, its text, and its index among job lines.
struct JobLine {
  int line;
  int index;
  std::string text;
};

// The job lines of the batch file at `path`. A file that is JSON but not one job per line (a job
// written over several lines, an array of jobs) is refused as a whole, saying how to run it: each
// of its lines would be called invalid JSON, or an array, not a job.
std::vector<JobLine> read_job_lines(const std::string& path) {
  const std::string text = read_job_file(path);
  std::istringstream lines(text);
  std::vector<JobLine> out;
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    out.push_back({number, static_cast<int>(out.size()), line});
  }
  if (out.empty()) return out;
  const auto first_line =
      nlohmann::json::parse(out[0].text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (first_line.is_object()) return out;
  const auto whole = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (whole.is_object() && out.size() > 1) {
    throw ConfigError(path +
                      ": one job written over several lines; a batch takes one job per line (JSON Lines): "
                      "run it with sdinterp run, or write it on one line (jq -c . " +
                      path + ")");
  }
  if (whole.is_array()) {
    throw ConfigError(path + ": a JSON array; a batch takes one job object per line (JSON Lines): jq -c '.[]' " + path +
                      " > jobs.jsonl writes an array's jobs so");
  }
  return out;
}

// A batch line as the job it stands for: its settings (the batch's flags applied over the line)
// and the keys set explicitly (what job_already_done compares). ConfigError naming `source` for a
// line that is not JSON, has a bad value or names no output.
struct BatchJob {
  RunConfig config;
  nlohmann::json explicit_keys;
};

BatchJob read_batch_job(const JobLine& l, const std::string& path, const std::string& source,
                        const nlohmann::json& overrides) {
  BatchJob b;
  b.explicit_keys = parse_job_object(l.text, path, l.line);
  apply_job(b.explicit_keys, b.config, source);
  apply_job(overrides, b.config, "");  // "": flags name themselves
  if (b.config.output.empty() && b.config.png_dir.empty()) {
    throw ConfigError(source + ": the job names no output (\"output\" or \"png-dir\")");
  }
  b.explicit_keys.update(overrides);
  return b;
}

// The job lines whose outputs an earlier job line already writes, each with the error that refuses
// it. Over the whole file, whatever the shard: workers of two shards would race for the files. Such
// a job could only fail (an existing output), with an error record over the first job's, or, with
// --overwrite, replace the first job's outputs. A line that cannot be read claims nothing: it fails
// on its own.
std::map<int, std::string> outputs_written_twice(const std::vector<JobLine>& lines, const std::string& path,
                                                 const nlohmann::json& overrides) {
  std::map<std::string, std::string> claimed;  // path_key -> the line that writes it
  std::map<int, std::string> refused;
  for (const JobLine& l : lines) {
    const std::string source = path + ":" + std::to_string(l.line);
    RunConfig c;
    try {
      c = read_batch_job(l, path, source, overrides).config;
    } catch (const Error&) {
      continue;
    }
    const std::pair<std::string, std::string> places[] = {
        {"output", c.output}, {"--png-dir", c.png_dir}, {"metadata", metadata_path(c)}};
    std::vector<std::string> keys;
    for (const auto& [what, place] : places) {
      if (place.empty()) continue;
      const std::string key = path_key(place);
      const auto first = claimed.find(key);
      if (first != claimed.end()) {
        refused[l.line] = source + ": " + what + " " + place + " is written by " + first->second +
                          " too; give each job its own outputs";
        break;
      }
      keys.push_back(key);
    }
    if (refused.count(l.line) == 0) {
      for (const std::string& key : keys) claimed.emplace(key, source);
    }
  }
  return refused;
}

std::string now_utc() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// A failed job's error record, written whole beside where its output would be (best effort: a
// record that cannot be written must not hide the error itself).
void write_error_record(const RunConfig& config, const std::string& source, const Error* error,
                        const std::string& what) {
  try {
    const nlohmann::json record = {{"source", text_json(source)},
                                   {"message", text_json(what)},
                                   {"exit_code", error != nullptr ? error->code() : kExitInternal},
                                   {"time", now_utc()}};
    const std::string text = record.dump(1) + "\n";
    io::AtomicFile file(error_record_path(config), /*overwrite=*/true);
    io::write_all(file.fd(), text.data(), text.size(), file.path());
    file.commit();
  } catch (const std::exception&) {
  }
}

void remove_error_record(const RunConfig& config) {
  std::error_code ec;
  std::filesystem::remove(error_record_path(config), ec);
}

Shard shard_of(const BatchOptions& o) {
  return choose_shard(o.shard, o.shard_count, [](const char* name) -> const char* { return std::getenv(name); });
}

// `batch --status`: each job of the shard done, missing, failed (an error record) or invalid.
int batch_status(const BatchOptions& o, const nlohmann::json& overrides) {
  const Shard shard = shard_of(o);
  nlohmann::json jobs = nlohmann::json::array();
  std::map<std::string, int> totals = {{"done", 0}, {"missing", 0}, {"failed", 0}, {"invalid", 0}};
  const std::vector<JobLine> lines = read_job_lines(o.path);
  const std::map<int, std::string> written_twice = outputs_written_twice(lines, o.path, overrides);
  for (const JobLine& l : lines) {
    if (!shard.runs(l.index)) continue;
    const std::string source = o.path + ":" + std::to_string(l.line);
    nlohmann::json entry = {{"line", l.line}, {"output", nullptr}, {"png_dir", nullptr}};
    std::string state, message;
    try {
      const BatchJob b = read_batch_job(l, o.path, source, overrides);
      if (const auto twice = written_twice.find(l.line); twice != written_twice.end()) {
        throw ConfigError(twice->second);
      }
      const RunConfig& config = b.config;
      config.validate();
      if (!config.output.empty()) entry["output"] = text_json(config.output);
      if (!config.png_dir.empty()) entry["png_dir"] = text_json(config.png_dir);
      std::ifstream record(error_record_path(config));
      if (job_already_done(config, b.explicit_keys)) {
        state = "done";
      } else if (record) {
        state = "failed";
        const nlohmann::json r = nlohmann::json::parse(record, nullptr, /*allow_exceptions=*/false);
        if (r.is_object() && r.contains("message")) text_from_json(r["message"], message);
      } else {
        state = "missing";
      }
    } catch (const Error& e) {
      state = "invalid";
      message = e.what();
    }
    ++totals[state];
    entry["state"] = state;
    if (!message.empty()) entry["message"] = text_json(message);
    jobs.push_back(entry);
    if (!o.json) {
      std::string where;
      text_from_json(entry["output"].is_null() ? entry["png_dir"] : entry["output"], where);
      // A message that names its line already ("jobs.jsonl:3: ...", or with the column,
      // "jobs.jsonl:3:14: ...") is shown after that place rather than after the line again.
      std::string place = source, shown = message;
      if (message.rfind(source + ":", 0) == 0) {
        const size_t end = message.find(": ", source.size());
        place = message.substr(0, end);
        shown = end == std::string::npos ? "" : message.substr(end + 2);
      }
      std::cout << state << std::string(8 - state.size(), ' ') << place << (where.empty() ? "" : "  " + where)
                << (shown.empty() ? "" : ": " + shown) << "\n";
    }
  }
  const int total = static_cast<int>(jobs.size());
  const int code = totals["done"] == total ? kExitOk : kExitBatchFailures;
  if (o.json) {
    std::cout << nlohmann::json{{"jobs", jobs},
                                {"done", totals["done"]},
                                {"missing", totals["missing"]},
                                {"failed", totals["failed"]},
                                {"invalid", totals["invalid"]},
                                {"total", total},
                                {"shard", {{"index", shard.index}, {"count", shard.count}}},
                                {"exit_code", code}}
                     .dump()
              << std::endl;
  } else {
    std::cout << "status: " << totals["done"] << " done, " << totals["missing"] << " missing, " << totals["failed"]
              << " failed, " << totals["invalid"] << " invalid, of " << total << " jobs"
              << (shard.count > 1 ? " (shard " + std::to_string(shard.index) + "/" + std::to_string(shard.count) + ")"
                                  : "")
              << std::endl;
  }
  return code;
}

}  // namespace

void add_batch_command(CLI::App& app, int& status) {
  CLI::App* sub = app.add_subcommand("batch", "Render many jobs, one JSON object per line; the model is loaded once");
  auto o = std::make_shared<BatchOptions>();
  sub->add_option("jobs", o->path,
                  "JSON Lines file: one job per line (blank lines and lines starting with # are skipped; - reads "
                  "them from standard input)")
      ->required();
  sub->add_flag("--skip-existing", o->skip_existing, "Skip jobs whose output and matching metadata already exist");
  sub->add_option("--shard", o->shard,
                  "Run the jobs whose index among the job lines is I modulo N (this worker of N); by default from a "
                  "Slurm array or Kubernetes indexed job's environment")
      ->type_name("I/N");
  sub->add_option("--shard-count", o->shard_count,
                  std::string("Kubernetes indexed jobs: the number of shards (the Job's completions; or set ") +
                      kShardCountVariable + ")")
      ->type_name("N");
  sub->add_flag(
      "--status", o->status,
      "Run nothing: say which jobs are done, missing, failed or invalid (exit 0 when all are done, 6 otherwise)");
  sub->add_flag("--json", o->json, "--status: one JSON object");
  auto flags = std::make_shared<JobFlags>(sub, JobFlagUse::kOverrides);
  auto ui = std::make_shared<UiOptions>();
  add_ui_flags(sub, *ui);
  sub->add_flag("--strict", ui->strict, kStrictHelp);
  sub->callback([o, flags, ui, &status] {
    o->path = job_file_path(o->path);
    ui->job = job_ref(o->path, 0, "", "");
    if (o->status) {
      status = batch_status(*o, flags->given());
      return;
    }
    if (o->json) throw ConfigError("--json is for --status (the progress of a run is --progress json)");
    int done = 0, skipped = 0, failed = 0;
    std::unique_ptr<RuntimeSession> session;
    auto summary = [&](bool interrupted) {
      const int loads = session ? session->bundle_loads() : 0;
      if (ui->progress == Progress::kJson) {
        emit_event("summary", nullptr,
                   {{"done", done},
                    {"skipped", skipped},
                    {"failed", failed},
                    {"model_loads", loads},
                    {"interrupted", interrupted},
                    {"exit_code", interrupted  ? kExitInterrupted
                                  : failed > 0 ? kExitBatchFailures
                                               : kExitOk}});
      } else {
        std::cout << "batch: " << done << " done, " << skipped << " skipped, " << failed << " failed, model loaded "
                  << count_text(loads, "time") << (interrupted ? ", interrupted" : "") << std::endl;
      }
    };
    std::vector<JobLine> lines;
    nlohmann::json overrides;
    Shard shard;
    std::map<int, std::string> written_twice;
    reporting_failures(*ui, [&] {
      check_ui(*ui);
      shard = shard_of(*o);
      lines = read_job_lines(o->path);
      overrides = flags->given();
      written_twice = outputs_written_twice(lines, o->path, overrides);
      // An output flag names one path for every line: all but one job could only clash.
      for (const auto& [key, flag] : {std::pair{"output", "-o"}, std::pair{"png-dir", "--png-dir"}}) {
        if (lines.size() > 1 && overrides.contains(key)) {
          throw ConfigError(std::string(flag) + " given to batch names one " +
                            (std::string(key) == "output" ? "output" : "frames folder") + " for all " +
                            std::to_string(lines.size()) + " jobs of " + o->path + "; give each line its own \"" + key +
                            "\"");
        }
      }
    });
    if (lines.empty()) {
      // Not an error (a script may have had nothing to make), but likely not what was meant.
      std::cerr << "sdinterp: warning: " << o->path
                << " holds no jobs (only blank lines and # comments, or nothing); nothing to run\n";
    }
    if (shard.count > 1 && !ui->quiet && ui->progress != Progress::kJson) {
      int mine = 0;
      for (const JobLine& l : lines) mine += shard.runs(l.index) ? 1 : 0;
      std::cerr << "sdinterp: shard " << shard.index << "/" << shard.count << " (" << shard.origin << "): " << mine
                << " of " << lines.size() << " jobs\n";
    }
    for (const JobLine& l : lines) {
      if (!shard.runs(l.index)) continue;
      const int line_number = l.line;
      const std::string source = o->path + ":" + std::to_string(line_number);
      UiOptions job_ui = *ui;
      job_ui.job = job_ref(o->path, line_number, "", "");
      RunConfig config;
      bool named_outputs = false;
      try {
        BatchJob b = read_batch_job(l, o->path, source, overrides);
        config = std::move(b.config);
        if (is_run_metadata(b.explicit_keys)) expect_recorded_files(b.explicit_keys, overrides, job_ui);
        job_ui.job = job_ref(o->path, line_number, config.output, config.png_dir);
        // Refused before named_outputs: its error record would be the other job's.
        if (const auto twice = written_twice.find(line_number); twice != written_twice.end()) {
          throw ConfigError(twice->second);
        }
        named_outputs = true;
        if (o->skip_existing && job_already_done(config, b.explicit_keys)) {
          ++skipped;
          remove_error_record(config);
          if (ui->progress == Progress::kJson) {
            emit_event("skipped", job_ui.job, {{"reason", "already done"}});
          } else if (!ui->quiet) {
            std::cout << "skipped " << source << ": already done" << std::endl;
          }
          continue;
        }
        if (!session) session = runtime(&config).new_session();
        run_and_report(*session, config, job_ui);
        remove_error_record(config);
        ++done;
      } catch (const InterruptedError& e) {
        report_failure(job_ui, e);
        summary(true);
        throw;
      } catch (const Error& e) {
        // Whatever one job meets, the others still run: only a signal stops a batch.
        ++failed;
        report_failure(job_ui, e);
        if (named_outputs) write_error_record(config, source, &e, e.what());
        std::cerr << "sdinterp: error: " << job_message(source, e.what()) << "\n";
      } catch (const std::exception& e) {
        ++failed;
        report_failure(job_ui, e);
        if (named_outputs) write_error_record(config, source, nullptr, e.what());
        std::cerr << "sdinterp: internal error: " << job_message(source, e.what()) << "\n";
      }
      if (interrupt_requested()) {
        report_failure(job_ui, InterruptedError());
        summary(true);
        throw InterruptedError();
      }
    }
    summary(false);
    status = failed > 0 ? kExitBatchFailures : kExitOk;
  });
}

}  // namespace sdinterp::cli
