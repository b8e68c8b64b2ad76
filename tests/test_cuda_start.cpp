#include <dlfcn.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include "sdinterp/config.h"
#include "sdinterp/cuda_start.h"
#include "test_support.h"

namespace sdinterp {
namespace {

using test::read_text;
using test::TempDir;

RunConfig job_on(DeviceChoice::Kind kind, int index, const std::string& bundle = "") {
  RunConfig job;
  job.device.kind = kind;
  job.device.index = index;
  job.bundle_dir = bundle;
  return job;
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// A copy of tiny-sd's model.json in `dir`, traced for `device`.
void write_manifest(const TempDir& dir, const std::string& device) {
  std::string text = read_text(std::string(SDINTERP_MODELS_DIR) + "/tiny-sd/model.json");
  const std::string from = "\"device\": \"cpu\"";
  const auto at = text.find(from);
  ASSERT_NE(at, std::string::npos);
  text.replace(at, from.size(), "\"device\": \"" + device + "\"");
  write_text(dir / "model.json", text);
}

TEST(CudaStart, TheJobsDevice) {
  EXPECT_EQ(job_cuda_device(job_on(DeviceChoice::Kind::kCpu, -1)), -1);
  EXPECT_EQ(job_cuda_device(job_on(DeviceChoice::Kind::kCuda, 2)), 2);
  EXPECT_EQ(job_cuda_device(job_on(DeviceChoice::Kind::kCuda, -1)), 0);  // "cuda": device 0 in a new process
  // auto: the device the bundle was traced for.
  EXPECT_EQ(job_cuda_device(job_on(DeviceChoice::Kind::kAuto, -1, std::string(SDINTERP_MODELS_DIR) + "/tiny-sd")), -1);
  TempDir cuda;
  write_manifest(cuda, "cuda");
  EXPECT_EQ(job_cuda_device(job_on(DeviceChoice::Kind::kAuto, -1, cuda.str())), 0);
  // A bundle that cannot be read: the runtime says so; nothing is started.
  EXPECT_EQ(job_cuda_device(job_on(DeviceChoice::Kind::kAuto, -1, cuda / "missing")), -1);
  TempDir broken;
  write_text(broken / "model.json", "{");
  EXPECT_EQ(job_cuda_device(job_on(DeviceChoice::Kind::kAuto, -1, broken.str())), -1);
}

// The driver's calls, through the stand-in library (tests/fake_cuda_driver.cpp): loaded by path
// first, it is what dlopen("libcuda.so.1") finds (its soname).
TEST(CudaStart, MakesThePrimaryContextOnceThroughTheDriver) {
  void* fake = ::dlopen(SDINTERP_FAKE_CUDA_DRIVER, RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(fake, nullptr) << ::dlerror();
  const auto calls = reinterpret_cast<void (*)(int*)>(::dlsym(fake, "fake_cuda_calls"));
  ASSERT_NE(calls, nullptr);
  int seen[4] = {};

  EXPECT_FALSE(start_cuda_context(-1));  // a CPU job
  ::setenv(kCudaWarmUpVariable, "0", 1);
  EXPECT_FALSE(start_cuda_context(3));
  ::setenv(kCudaWarmUpVariable, "yes", 1);  // refused by the runtime: nothing started for it
  EXPECT_FALSE(start_cuda_context(3));
  calls(seen);
  EXPECT_EQ(seen[0], 0);
  EXPECT_EQ(seen[3], 0);

  ::setenv(kCudaWarmUpVariable, "1", 1);
  ASSERT_TRUE(start_cuda_context(3));
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  do {
    calls(seen);
    if (seen[3] > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  } while (std::chrono::steady_clock::now() < until);
  EXPECT_EQ(seen[0], 1);    // cuInit
  EXPECT_EQ(seen[1], 3);    // the device asked for
  EXPECT_EQ(seen[2], 103);  // the handle cuDeviceGet gave
  EXPECT_EQ(seen[3], 1);    // retained once

  ::unsetenv(kCudaWarmUpVariable);
  EXPECT_FALSE(start_cuda_context(0));  // once a process
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  calls(seen);
  EXPECT_EQ(seen[3], 1);
}

}  // namespace
}  // namespace sdinterp
