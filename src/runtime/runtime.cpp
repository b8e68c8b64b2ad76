// libsdinterp_runtime.so: everything the CLI does with LibTorch, behind cli/runtime.h. LibTorch's
// own exceptions stop here and leave as sdinterp errors (the executable knows no LibTorch types).
#include <c10/util/Exception.h>
#include <cuda_runtime_api.h>
#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "cli/runtime.h"
#include "runtime/execute.h"
#include "sdinterp/errors.h"

namespace sdinterp::cli {
namespace {

template <typename F>
auto translating_libtorch_errors(F f) {
  try {
    return f();
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    throw Error(kExitInternal, "LibTorch: " + what.substr(0, what.find('\n')));
  }
}

class Session : public RuntimeSession {
 public:
  explicit Session(const RuntimeHost& host) : host_(host) {}
  std::string execute_job(const RunConfig& config, const UiOptions& ui) override {
    return translating_libtorch_errors(
        [&] { return result_line(cli::execute_job(cache_, config, ui, host_.interrupted)); });
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
    return translating_libtorch_errors([] {
      auto env = [](const char* name) {
        const char* value = std::getenv(name);
        return value != nullptr ? nlohmann::json(value) : nlohmann::json(nullptr);
      };
      return nlohmann::json{{"libtorch", TORCH_VERSION},
                            {"cuda_available", torch::cuda::is_available()},
                            {"cuda_devices", cuda_devices()},
                            {"cpu_threads", at::get_num_threads()},
                            {"openmp_env", {{"GOMP_SPINCOUNT", env("GOMP_SPINCOUNT")},
                                            {"OMP_WAIT_POLICY", env("OMP_WAIT_POLICY")}}}};
    });
  }

 private:
  RuntimeHost host_;
};

}  // namespace
}  // namespace sdinterp::cli

extern "C" __attribute__((visibility("default"))) sdinterp::cli::Runtime* sdinterp_runtime_create(
    const sdinterp::cli::RuntimeHost* host, int interface_version) {
  if (host == nullptr || interface_version != sdinterp::cli::kRuntimeInterfaceVersion) return nullptr;
  static sdinterp::cli::TorchRuntime runtime(*host);
  return &runtime;
}
