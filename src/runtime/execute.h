// Running one job for the CLI (inside the runtime library, namespace runtime): bundle cache, seed, sinks,
// progress, metadata next to outputs.
#pragma once

#include <future>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/runtime.h"
#include "sdinterp/bundle.h"
#include "sdinterp/bundle_hash.h"
#include "sdinterp/pipeline.h"

namespace sdinterp::runtime {

// The CLI side of the runtime interface (cli/runtime.h): how a job reports.
using cli::UiOptions;

// Bundles loaded once per (folder, device, UNet engine), with their file hashes, for batch runs.
class BundleCache {
 public:
  // Drops the cached bundle when its files changed since it was loaded (re-exported, copied over),
  // so that the next get() loads them afresh. Called before a job uses the cache.
  void refresh(const ModelOptions& model);
  const Bundle& get(const ModelOptions& model);
  // True the first time it is asked for a loaded bundle (to warn about it once per session).
  bool first_warning(const ModelOptions& model);
  // The bundle's file hashes (bundle_hashes), computed in the background from the load on.
  std::shared_future<nlohmann::json> hashes(const ModelOptions& model);
  // The bundle's files that changed since it was loaded ("" when none; "unet.safetensors"). A job
  // that used it checks this before writing anything: its frames (on the CPU the weights are read
  // from the mapped files throughout) and its hashes must both be of the files as loaded.
  std::string changed_since_load(const ModelOptions& model);
  int loads() const { return loads_; }
  // Seconds an output set (keyed by its kinds, e.g. ".gif png") took to encode per frame pixel,
  // measured on the last job of the session that wrote it: the ETA of the next one counts it.
  std::map<std::string, double> encode_seconds_per_pixel;
  // Warnings given in this session (each is given once).
  std::set<std::string> warned;

 private:
  struct Entry {
    std::unique_ptr<Bundle> bundle;
    std::shared_future<nlohmann::json> hashes;  // computed beside the load and the first run
    FileSignatures files;                       // the hashed files as they were before the load
    bool warned = false;
  };
  Entry& entry(const ModelOptions& model);
  std::map<std::string, Entry> entries_;
  int loads_ = 0;
};

struct JobOutcome {
  RunResult result;
  struct Output {
    std::string path, description;
  };
  std::vector<Output> outputs;
  std::string metadata;  // its path
};

// Validates, loads (through the cache), runs and writes outputs + metadata; whole or nothing.
// `interrupted` is polled after every model call.
JobOutcome execute_job(BundleCache& cache, RunConfig config, const UiOptions& ui, bool (*interrupted)());

// What a finished job wrote, as RuntimeSession::execute_job returns it.
nlohmann::json result_json(const JobOutcome& outcome);

}  // namespace sdinterp::runtime
