#include "sdinterp/cuda_start.h"

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <thread>

#include "sdinterp/errors.h"
#include "sdinterp/manifest.h"

namespace sdinterp {

int job_cuda_device(const RunConfig& job) {
  switch (job.device.kind) {
    case DeviceChoice::Kind::kCpu:
      return -1;
    case DeviceChoice::Kind::kCuda:
      return std::max(job.device.index, 0);  // "cuda": the current device, 0 in a new process
    case DeviceChoice::Kind::kAuto:
      break;
  }
  try {
    return load_manifest(job.bundle_dir).device == "cuda" ? 0 : -1;
  } catch (const std::exception&) {
    return -1;
  }
}

// Why: a command's first CUDA call makes the device's context (the driver's initialisation, the
// context's memory), a few tenths of a second on a data-centre GPU, and until now it came after
// LibTorch's libraries had loaded (about 0.3 s), with every weight's copy to the device waiting for
// it. Made here, on its own thread, it overlaps that load. The driver's own API is used, opened by
// name: the executable links neither LibTorch nor CUDA. LibTorch's CUDA runtime then finds the
// device's primary context made and uses it.
bool start_cuda_context(int index) {
  if (index < 0) return false;
  try {
    if (!env_switch(kCudaWarmUpVariable, true)) return false;
  } catch (const ConfigError&) {
    return false;  // the runtime refuses the value before any work
  }
  static std::atomic<bool> started{false};
  if (started.exchange(true)) return false;
  // Opened on this thread, before the runtime's libraries: a dlopen waits for any other in
  // progress (the loader's lock is held while their initialisers run).
  void* driver = ::dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (driver == nullptr) return false;
  // CUresult cuInit(unsigned), cuDeviceGet(CUdevice*, int), cuDevicePrimaryCtxRetain(CUcontext*,
  // CUdevice): CUresult and CUdevice are ints, CUcontext a pointer; 0 is CUDA_SUCCESS.
  using Init = int (*)(unsigned);
  using DeviceGet = int (*)(int*, int);
  using PrimaryContextRetain = int (*)(void**, int);
  const auto init = reinterpret_cast<Init>(::dlsym(driver, "cuInit"));
  const auto device_get = reinterpret_cast<DeviceGet>(::dlsym(driver, "cuDeviceGet"));
  const auto retain = reinterpret_cast<PrimaryContextRetain>(::dlsym(driver, "cuDevicePrimaryCtxRetain"));
  if (init == nullptr || device_get == nullptr || retain == nullptr) return false;
  try {
    // Detached: the process may end before it does (the retained context goes with the process).
    std::thread([=] {
      int device = 0;
      void* context = nullptr;
      if (init(0) == 0 && device_get(&device, index) == 0) (void)retain(&context, device);
    }).detach();
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

}  // namespace sdinterp
