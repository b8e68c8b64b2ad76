// libsdinterp_runtime.so: everything the CLI does with LibTorch, behind cli/runtime.h. LibTorch's
// own exceptions stop here and leave as sdinterp errors (the executable knows no LibTorch types).
#include <ATen/Parallel.h>
#include <c10/core/AllocatorConfig.h>
#include <c10/util/Exception.h>
#include <cuda_runtime_api.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>
#include <system_error>

#include "cli/runtime.h"
#include "runtime/execute.h"
#include "sdinterp/config.h"
#include "sdinterp/errors.h"

namespace sdinterp::runtime {
namespace {

// The interface the CLI loads this library through (cli/runtime.h).
using cli::Runtime;
using cli::RuntimeHost;
using cli::RuntimeSession;

// What LibTorch said, in one line. An error inside a TorchScript module comes as "The following
// operation failed in the TorchScript interpreter.", the traceback of the traced graph, then the
// error itself ("RuntimeError: Sizes of tensors must match ..."): that last part is the line.
std::string libtorch_summary(const std::string& what) {
  std::istringstream lines(what);
  std::string line, first, error;
  while (std::getline(lines, line)) {
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (first.empty()) first = line;
    const auto colon = line.find(": ");
    const std::string head = line.substr(0, colon);
    const bool names_an_error = colon != std::string::npos && head.find_first_of(" \t") == std::string::npos &&
                                (head.size() > 5 && (head.compare(head.size() - 5, 5, "Error") == 0 ||
                                                     head.find("Exception") != std::string::npos));
    if (error.empty() && names_an_error) error = line;
  }
  return error.empty() ? first : error;
}

// How LibTorch's CPU allocator begins its message when an allocation fails (c10/core/impl/alloc_cpu.cpp).
constexpr const char* kCpuAllocationFailure = "DefaultCPUAllocator: can't allocate memory";

bool verbose_from_environment() { return env_switch(kVerboseVariable, false); }

// LibTorch's exceptions leave as sdinterp errors: `what_failed`, LibTorch's line and `hint`, exit
// status `code`. With --verbose (or kVerboseVariable=1) LibTorch's whole message, TorchScript traceback
// included, goes to stderr first.
template <typename F>
auto translating_libtorch_errors(const char* what_failed, const char* hint, ExitCode code, bool verbose, F f) {
  auto translated = [&](const std::string& what) {
    // LibTorch's CPU allocator reports a failed allocation as a plain error (an enforce, which the
    // TorchScript interpreter passes on as a RuntimeError), not as the OutOfMemoryError the CUDA
    // allocator throws: out of memory all the same.
    if (const auto at = what.find(kCpuAllocationFailure); at != std::string::npos) {
      return Error(kExitOutOfMemory, "out of memory: " + what.substr(at, what.find('\n', at) - at) +
                                         " (try a smaller --batch or a smaller --height/--width)");
    }
    verbose = verbose || verbose_from_environment();
    if (verbose) std::cerr << what << (what.empty() || what.back() != '\n' ? "\n" : "");
    std::string advice = hint;
    if (!verbose)
      advice += std::string(advice.empty() ? "" : "; ") + "--verbose or " + kVerboseVariable +
                "=1 prints LibTorch's whole message";
    return Error(
        code, std::string(what_failed) + ": " + libtorch_summary(what) + (advice.empty() ? "" : " (" + advice + ")"));
  };
  try {
    return f();
  } catch (const Error&) {
    throw;
  } catch (const std::system_error&) {
    throw;  // file system errors are not LibTorch's
  } catch (const c10::OutOfMemoryError& e) {
    throw OutOfMemoryError("out of device memory: " + libtorch_summary(e.what_without_backtrace()) +
                           " (try a smaller --batch, a --max-vram cap, or a smaller --height/--width)");
  } catch (const c10::Error& e) {
    throw translated(e.what_without_backtrace());
  } catch (const std::runtime_error& e) {
    throw translated(e.what());  // the TorchScript interpreter's errors (and torch::jit::JITException)
  }
}

class Session : public RuntimeSession {
 public:
  explicit Session(const RuntimeHost& host) : host_(host) {}
  nlohmann::json execute_job(const RunConfig& config, const UiOptions& ui) override {
    return translating_libtorch_errors(
        "the model failed while running",
        "is the bundle complete and made for this sdinterp? a size or batch it was not traced for?", kExitModel,
        ui.verbose, [&] { return result_json(runtime::execute_job(cache_, config, ui, host_.interrupted)); });
  }
  int bundle_loads() const override { return cache_.loads(); }

 private:
  RuntimeHost host_;
  BundleCache cache_;
};

nlohmann::json cuda_devices() {
  nlohmann::json devices = nlohmann::json::array();
  if (!torch::cuda::is_available()) return devices;
  const int count = static_cast<int>(torch::cuda::device_count());
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp props{};
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaGetDeviceProperties(&props, i) != cudaSuccess || cudaSetDevice(i) != cudaSuccess ||
        cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) {
      devices.push_back({{"index", i}, {"error", "cannot query the device"}});
      continue;
    }
    devices.push_back({{"index", i},
                       {"name", props.name},
                       {"compute_capability", std::to_string(props.major) + "." + std::to_string(props.minor)},
                       {"free_gib", static_cast<double>(free_bytes) / (1 << 30)},
                       {"total_gib", static_cast<double>(total_bytes) / (1 << 30)}});
  }
  return devices;
}

class TorchRuntime : public Runtime {
 public:
  explicit TorchRuntime(const RuntimeHost& host) : host_(host) {}
  std::unique_ptr<RuntimeSession> new_session() override { return std::make_unique<Session>(host_); }
  nlohmann::json devices() override {
    return translating_libtorch_errors("LibTorch failed", "", kExitInternal, false, [] {
      auto env = [](const auto& names) {
        nlohmann::json values = nlohmann::json::object();
        for (const char* name : names) {
          const char* value = std::getenv(name);
          values[name] = value != nullptr ? nlohmann::json(value) : nlohmann::json(nullptr);
        }
        return values;
      };
      return nlohmann::json{
          {"libtorch", TORCH_VERSION},
          {"cuda_available", torch::cuda::is_available()},
          {"cuda_devices", cuda_devices()},
          {"cpu_threads", at::get_num_threads()},
          {"openmp_env", env(cli::kOpenMpWaitVariables)},
          {"cuda_allocator",
           {{"expandable_segments", c10::CachingAllocator::AcceleratorAllocatorConfig::use_expandable_segments()},
            {"env", env(cli::kCudaAllocConfVariables)}}}};
    });
  }

 private:
  RuntimeHost host_;
};

}  // namespace
}  // namespace sdinterp::runtime

extern "C" __attribute__((visibility("default"))) sdinterp::cli::Runtime* sdinterp_runtime_create(
    const sdinterp::cli::RuntimeHost* host, int interface_version) {
  if (host == nullptr || interface_version != sdinterp::cli::kRuntimeInterfaceVersion) return nullptr;
  if (host->temporaries != nullptr) sdinterp::io::use_temporary_list(*host->temporaries);
  static sdinterp::runtime::TorchRuntime runtime(*host);
  return &runtime;
}
