// The first use of CUDA in a process, started early: the device's context is made while LibTorch
// loads. No torch.
#pragma once

#include "sdinterp/config.h"

namespace sdinterp {

// SDINTERP_CUDA_WARM_UP=0 leaves out everything that starts CUDA ahead of the first job: the early
// context (start_cuda_context) and the CUDA libraries' first use during the bundle's load (bundle.cpp).
// 1 or unset: both. Any other value is refused (ConfigError) when the runtime starts.
constexpr const char* kCudaWarmUpVariable = "SDINTERP_CUDA_WARM_UP";

// The CUDA device index `job` will run on, or -1 when it runs on the CPU or that cannot be told
// without the runtime: --device cuda:N gives N, cuda 0; --device auto reads the bundle's
// model.json (an unreadable one gives -1: the runtime reports it).
int job_cuda_device(const RunConfig& job);

// Starts making CUDA device `index`'s primary context (the one LibTorch's CUDA runtime uses) on a
// thread of its own, through the driver's library, and returns at once; nothing when `index` < 0,
// when SDINTERP_CUDA_WARM_UP is anything but 1 or unset, when there is no driver or no such device,
// or when it was started before. Errors are left for the runtime to meet and report. Returns
// whether a thread was started.
bool start_cuda_context(int index);

}  // namespace sdinterp
