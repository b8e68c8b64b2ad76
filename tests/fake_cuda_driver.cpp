// A stand-in for the CUDA driver's library (libcuda.so.1) for test_cuda_start: the three calls
// sdinterp's early context makes, each counted. Its file name is not libcuda's (its soname is), so
// nothing finds it unless a test loads it by path first.
#include <atomic>

namespace {
std::atomic<int> inits{0};
std::atomic<int> asked_ordinal{-1};
std::atomic<int> retained_device{-1};
std::atomic<int> retains{0};
}  // namespace

extern "C" {
// The driver's CUresult is an int, 0 for success; a CUdevice is an int, a CUcontext a pointer.
int cuInit(unsigned flags) {
  if (flags != 0) return 1;
  inits.fetch_add(1);
  return 0;
}
int cuDeviceGet(int* device, int ordinal) {
  asked_ordinal.store(ordinal);
  *device = 100 + ordinal;  // a handle, not the ordinal: the retain must be given this
  return 0;
}
int cuDevicePrimaryCtxRetain(void** context, int device) {
  static int primary = 0;
  *context = &primary;
  retained_device.store(device);
  retains.fetch_add(1);
  return 0;
}
// What was called: inits, the ordinal asked for, the device retained, retains.
void fake_cuda_calls(int* out) {
  out[0] = inits.load();
  out[1] = asked_ordinal.load();
  out[2] = retained_device.load();
  out[3] = retains.load();
}
}
