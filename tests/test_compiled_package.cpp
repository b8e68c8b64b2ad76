// Whether an AOTInductor package compiled elsewhere can run here: device kind, machine, CPU
// instruction set, GPU architecture.
#include <gtest/gtest.h>

#include "sdinterp/bundle_hash.h"
#include "sdinterp/compiled_package.h"

namespace sdinterp {
namespace {

MachineFacts avx512_cpu() {
  MachineFacts m;
  m.machine = "x86_64";
  for (const char* f : {"avx2", "fma3", "avx512_f", "avx512_dq", "avx512_vl", "avx512_bw", "avx512_vnni"})
    m.cpu[f] = true;
  m.cpu["amx_tile"] = false;
  return m;
}

std::map<std::string, std::string> cpu_package(const std::string& isa) {
  return {
      {"AOTI_DEVICE_KEY", "cpu"}, {"AOTI_MACHINE", "x86_64"}, {"AOTI_CPU_ISA", isa}, {"AOTI_COMPUTE_CAPABILITY", ""}};
}

TEST(CompiledPackage, CpuPackageRunsWhereItsInstructionsExist) {
  EXPECT_EQ(compiled_package_mismatch(cpu_package("AVX512 AVX512_VNNI"), "cpu", avx512_cpu()), "");
  EXPECT_EQ(compiled_package_mismatch(cpu_package("AVX2"), "cpu", avx512_cpu()), "");
  EXPECT_EQ(compiled_package_mismatch(cpu_package("INVALID VEC ISA"), "cpu", avx512_cpu()), "");
  EXPECT_EQ(
      compiled_package_mismatch(cpu_package("AVX512 AVX512_VNNI AMX_TILE"), "cpu", avx512_cpu()),
      "compiled for CPUs with AVX512 AVX512_VNNI AMX_TILE, this one lacks amx_tile (compile it again on this machine)");
  MachineFacts avx2 = avx512_cpu();
  avx2.cpu.erase("avx512_f");
  EXPECT_EQ(compiled_package_mismatch(cpu_package("AVX512"), "cpu", avx2),
            "compiled for CPUs with AVX512, this one lacks avx512_f (compile it again on this machine)");
  MachineFacts arm;
  arm.machine = "aarch64";
  EXPECT_EQ(compiled_package_mismatch(cpu_package("AVX2"), "cpu", arm),
            "compiled for x86_64 machines, this one is aarch64");
}

TEST(CompiledPackage, CpuPackageNeedsItsThreadCount) {
  MachineFacts here = avx512_cpu();
  here.cpu_threads = 16;
  EXPECT_EQ(compiled_package_mismatch(cpu_package("AVX2"), "cpu", here, 16), "");
  EXPECT_EQ(compiled_package_mismatch(cpu_package("AVX2"), "cpu", here, 0), "");  // not recorded
  EXPECT_EQ(compiled_package_mismatch(cpu_package("AVX2"), "cpu", here, 2),
            "compiled to run on 2 CPU threads, this run has 16 (compile it again here, or set OMP_NUM_THREADS=2)");
}

TEST(CompiledPackage, DeviceKindMustMatch) {
  EXPECT_EQ(compiled_package_mismatch(cpu_package("AVX2"), "cuda", avx512_cpu()),
            "compiled for cpu, the bundle runs on cuda");
  EXPECT_EQ(compiled_package_mismatch({}, "cpu", avx512_cpu()),
            "compiled for an unknown device, the bundle runs on cpu");
}

TEST(CompiledPackage, CudaPackageNeedsTheSameGpuArchitecture) {
  const std::map<std::string, std::string> h100 = {{"AOTI_DEVICE_KEY", "cuda"},
                                                   {"AOTI_MACHINE", "x86_64"},
                                                   {"AOTI_CPU_ISA", "AVX512"},
                                                   {"AOTI_COMPUTE_CAPABILITY", "90"}};
  MachineFacts here = avx512_cpu();
  here.cuda_compute_capability = 90;
  EXPECT_EQ(compiled_package_mismatch(h100, "cuda", here), "");
  // The host code of a CUDA package is plain x86-64: the CPU's vector ISA does not matter.
  here.cpu.clear();
  EXPECT_EQ(compiled_package_mismatch(h100, "cuda", here), "");
  here.cuda_compute_capability = 80;
  EXPECT_EQ(compiled_package_mismatch(h100, "cuda", here),
            "compiled for GPUs of compute capability 90, this one has 80 (compile it again on this kind of GPU)");
}

TEST(CompiledPackage, Fnv1a64KnownAnswers) {
  // The FNV-1a 64 test vectors (offset basis, "a", "foobar").
  EXPECT_EQ(fnv1a64_text(""), "cbf29ce484222325");
  EXPECT_EQ(fnv1a64_text("a"), "af63dc4c8601ec8c");
  EXPECT_EQ(fnv1a64_text("foobar"), "85944171f73967e8");
}

TEST(CompiledPackage, WeightsSignatureEqualsTheExporters) {
  // scripts/export_bundle.py weights_signature({"b.w": (4, 32, 3, 3), "a.bias": (4,), "scalar": ()}).
  EXPECT_EQ(weights_signature({{"b.w", {4, 32, 3, 3}}, {"a.bias", {4}}, {"scalar", {}}}), "cd51819988ea1d9f");
  EXPECT_EQ(weights_signature({}), "cbf29ce484222325");
  EXPECT_NE(weights_signature({{"a.bias", {4}}}), weights_signature({{"a.bias", {8}}}));
}

}  // namespace
}  // namespace sdinterp
