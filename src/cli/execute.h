// Running one job from the CLI: bundle cache, seed, sinks, progress, metadata next to outputs.
#pragma once

#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "cli/job_flags.h"
#include "sdinterp/bundle.h"
#include "sdinterp/pipeline.h"

namespace sdinterp::cli {

// Bundles loaded once per (folder, device), with their file hashes, for batch runs.
class BundleCache {
 public:
  Bundle& get(const std::string& dir, const std::string& device);
  const nlohmann::json& hashes(const std::string& dir, const std::string& device);
  int loads() const { return loads_; }

 private:
  struct Entry {
    std::unique_ptr<Bundle> bundle;
    nlohmann::json hashes;
  };
  Entry& entry(const std::string& dir, const std::string& device);
  std::map<std::string, Entry> entries_;
  int loads_ = 0;
};

// Where a job's metadata goes: OUTPUT.json beside -o OUTPUT, else DIR.json beside --png-dir DIR.
std::string metadata_path(const RunConfig& config);

// True when `config`'s outputs and metadata exist and the metadata records the same job (every
// key the job line sets explicitly, `explicit_keys`, has the same value).
bool job_already_done(const RunConfig& config, const nlohmann::json& explicit_keys);

struct JobOutcome {
  RunResult result;
  std::string outputs;  // description of what was written
};

// Validates, loads (through the cache), runs and writes outputs + metadata; whole or nothing.
JobOutcome execute_job(BundleCache& cache, RunConfig config, const UiOptions& ui);

// The one line printed for a finished job.
std::string result_line(const JobOutcome& outcome);

}  // namespace sdinterp::cli
