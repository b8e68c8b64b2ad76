// What a command prints about its jobs: the result line (or, with --progress json, the events of
// cli/events.h for results, skips, failures and interruptions).
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/runtime.h"
#include "sdinterp/config.h"

namespace sdinterp::cli {

// The line of a finished job: "wrote GIF a.gif (30 frames, 64x64), seed 5, 1.23 s".
std::string result_line(const nlohmann::json& result);

// Runs one job in `session` and reports its result: the line on stdout, or a "result" event.
void run_and_report(RuntimeSession& session, const RunConfig& config, const UiOptions& ui);

// `message` prefixed with "SOURCE: " (a job file and line, "jobs.jsonl:3: ...") unless it names the
// source already, as a batch's reading and planning errors do: every error of a job reads alike.
std::string job_message(const std::string& source, const std::string& message);

// Reports a failure of `ui.job` as an "error" (or "interrupted") event under --progress json;
// prints nothing otherwise (the caller or main prints the error line on stderr).
void report_failure(const UiOptions& ui, const std::exception& e);

// Runs `body`, reporting a failure escaping it (report_failure) before letting it go on.
void reporting_failures(const UiOptions& ui, const std::function<void()>& body);

}  // namespace sdinterp::cli
