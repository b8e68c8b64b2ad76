// The flags that describe a run, shared by `generate` (flags only) and `run` (a job file, with
// flags overriding it). Given flags become a JSON object with the job keys, so flags and job
// files go through one parser (apply_job).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/runtime.h"
#include "sdinterp/config.h"

namespace sdinterp::cli {

// What the flags of a command stand for.
enum class JobFlagUse {
  kWholeJob,   // generate: the flags are the job (--bundle required), defaults shown in the help
  kOverrides,  // run, batch: a flag given replaces the job's value; one not given leaves it, so the
               // help shows no default (a job file's value, else the default, applies)
  kSettings,   // encode: the outputs' settings alone, defaults shown
};

class JobFlags {
 public:
  // Registers every job flag on `sub` (or only those of `keys`, as `encode` does).
  JobFlags(CLI::App* sub, JobFlagUse use, const std::vector<std::string>& keys = {});
  // The flags the user gave, as a job object.
  nlohmann::json given() const;

 private:
  // The flags as given, by job key (job_key_table()): one text, repeated texts, or a switch.
  std::map<std::string, std::string> texts_;
  std::map<std::string, std::vector<std::string>> lists_;
  std::map<std::string, bool> switches_;
  std::map<std::string, CLI::Option*> options_;
};

void add_ui_flags(CLI::App* sub, UiOptions& ui);
// ConfigError for a --progress that is none of its names.
void check_ui(const UiOptions& ui);

}  // namespace sdinterp::cli
