// The CLI's one door to LibTorch. The sdinterp executable does not link LibTorch: the commands
// that run a model (generate, run, batch, info) load libsdinterp_runtime.so, built beside the
// executable, on first use. So `encode`, `tokenize`, --help, --version and flag errors start
// in milliseconds instead of waiting about half a second for LibTorch to load.
//
// Both sides are built together from this tree; the interface version below catches a stale
// library left over from another build.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "io/atomic_output.h"
#include "sdinterp/config.h"

namespace sdinterp::cli {

// --progress: auto (a bar on a terminal), bar, json (one line per event on stdout), none.
enum class Progress { kAuto, kBar, kJson, kNone };

// How a run talks to the user (not part of the job).
struct UiOptions {
  bool quiet = false;
  Progress progress = Progress::kAuto;
  std::string progress_given;  // --progress as given when it names no mode ("" when it does): check_ui refuses it
  bool verbose = false;        // LibTorch's whole message when the model fails (SDINTERP_VERBOSE=1 too)
  nlohmann::json job;          // names the job in --progress json events (job_ref in cli/events.h)
  // The bundle's file hashes as run metadata recorded them (bundle_hashes), null for other jobs:
  // a bundle whose files differ gets a warning, or with `strict` an error before any work.
  nlohmann::json expected_hashes;
  // The image-morph inputs' hashes as run metadata recorded them ({"algorithm", "files": [...]}, in
  // the job's order), null for other jobs or when --image replaces the recorded images: likewise.
  nlohmann::json expected_image_hashes;
  bool strict = false;
};

// Jobs run in one session share loaded bundles (a batch loads its model once).
class RuntimeSession {
 public:
  virtual ~RuntimeSession() = default;
  // Validates, loads the bundle (once per folder and device in this session), runs, and
  // writes the outputs and metadata whole or not at all. Returns what was written:
  // {"outputs": [{"path", "description"}], "metadata": path, "frames", "width", "height", "seed",
  //  "seconds"}.
  virtual nlohmann::json execute_job(const RunConfig& config, const UiOptions& ui) = 0;
  // Bundles loaded so far.
  virtual int bundle_loads() const = 0;
};

class Runtime {
 public:
  virtual ~Runtime() = default;
  virtual std::unique_ptr<RuntimeSession> new_session() = 0;
  // {"libtorch": version, "cuda_available": bool, "cuda_devices": [{index, name, ...}],
  //  "cpu_threads": LibTorch's intra-op threads, "openmp_env": {kOpenMpWaitVariables},
  //  "cuda_allocator": {"expandable_segments": as LibTorch took it, "env": {kCudaAllocConfVariables}}}
  virtual nlohmann::json devices() = 0;
};

// What the executable lends the runtime.
struct RuntimeHost {
  bool (*interrupted)();  // true once Ctrl-C or SIGTERM asked the run to stop
  // The executable's list of temporaries, which its second-signal handler removes: the runtime's
  // outputs list theirs there too.
  const io::TemporaryList* temporaries;
};

// Settings sdinterp gives LibTorch's libraries when the user sets none of their variables: the
// first variable of each list gets the default (see runtime_loader.cpp); `sdinterp info` reports
// each list. GOMP_SPINCOUNT for LibTorch's OpenMP threads, when neither it nor OMP_WAIT_POLICY is set:
constexpr const char* kOpenMpWaitVariables[] = {"GOMP_SPINCOUNT", "OMP_WAIT_POLICY"};
constexpr const char* kDefaultGompSpinCount = "1000";
// LibTorch's CUDA memory settings when the user sets neither of its variables (the first is the
// older name, which every LibTorch reads; see runtime_loader.cpp).
constexpr const char* kCudaAllocConfVariables[] = {"PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_ALLOC_CONF"};
constexpr const char* kDefaultCudaAllocConf = "expandable_segments:True";

// The runtime, loaded on first call (and kept until the process ends: LibTorch cannot be
// unloaded). Throws Error with kExitInternal when the library is missing or stale. `first_job`,
// when given, is the first job it will run: on CUDA that device's context is started on a thread
// of its own before the library loads (sdinterp/cuda_start.h).
Runtime& runtime(const RunConfig* first_job = nullptr);

// The library's one exported entry point: extern "C" Runtime* sdinterp_runtime_create(
// const RuntimeHost*, int interface_version), null when the versions differ.
constexpr const char* kRuntimeEntryPoint = "sdinterp_runtime_create";
constexpr int kRuntimeInterfaceVersion = 3;
using RuntimeEntryPoint = Runtime* (*)(const RuntimeHost*, int);

}  // namespace sdinterp::cli
