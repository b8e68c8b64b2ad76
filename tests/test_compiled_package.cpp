// Whether an AOTInductor package compiled elsewhere can run here: device kind, machine, CPU
// instruction set, GPU architecture.
#include <gtest/gtest.h>

#include <fstream>
#include <string>
#include <vector>

#include "sdinterp/bundle_hash.h"
#include "sdinterp/compiled_package.h"
#include "sdinterp/errors.h"
#include "test_support.h"

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

// Bytes (7i + 3) mod 256, i = 0..n-1: every lane and tail path of XXH64 sees varied bytes.
std::string pattern(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * 7 + 3) % 256);
  return out;
}

TEST(BundleHash, Xxh64EqualsTheReferenceImplementation) {
  // xxhash.xxh64(pattern(n)).hexdigest() from the Python xxhash package (libxxhash): lengths on
  // either side of the 4- and 8-byte tails and of the 32-byte stripe.
  const std::vector<std::pair<size_t, std::string>> known = {
      {0, "ef46db3751d8e999"},  {1, "1f25c8d0bc1f4bb6"},  {3, "31d2363f52e564c9"},   {4, "9bb64b7d66ee9fda"},
      {7, "9a7b149959ce60d8"},  {8, "dab99d95c6f90092"},  {9, "170bb6bf975b4c02"},   {12, "d52e407833af5133"},
      {31, "a2aa5f33cc4a6119"}, {32, "23c3c17ef790fd97"}, {33, "50a7cfc7ba588784"},  {63, "5e3e54b431c7493c"},
      {64, "0eb64b3ef6eeb01f"}, {65, "a383b724b2bd12f1"}, {100, "a61f8d4c170fe531"}, {1037, "d2a90d804d876bff"},
  };
  for (const auto& [n, hash] : known) {
    const std::string bytes = pattern(n);
    EXPECT_EQ(xxh64_hex(bytes.data(), bytes.size()), hash) << n << " bytes";
  }
  // Files are read in 1 MiB pieces: one that ends on a piece, and one that ends 37 bytes past two.
  test::TempDir dir;
  const std::vector<std::pair<size_t, std::string>> files = {{size_t{1} << 20, "989560ce899d661b"},
                                                             {(size_t{2} << 20) + 37, "c40df5852d339e9d"}};
  for (const auto& [n, hash] : files) {
    std::ofstream(dir / "f", std::ios::binary) << pattern(n);
    EXPECT_EQ(find_file_hash_algorithm("xxh64")->file(dir / "f"), hash) << n << " bytes";
  }
}

TEST(BundleHash, AlgorithmsByName) {
  EXPECT_STREQ(recorded_file_hash_algorithm().name, "xxh64");
  // Run metadata written before XXH64 names FNV-1a; its file hashes still compare.
  const FileHashAlgorithm* fnv = find_file_hash_algorithm("fnv1a-64");
  ASSERT_NE(fnv, nullptr);
  EXPECT_EQ(fnv->text("foobar"), "85944171f73967e8");
  EXPECT_EQ(find_file_hash_algorithm("sha1"), nullptr);
  test::TempDir dir;
  std::ofstream(dir / "f", std::ios::binary) << "foobar";
  EXPECT_EQ(fnv->file(dir / "f"), "85944171f73967e8");
  EXPECT_THROW(fnv->file(dir / "missing"), IoError);
}

TEST(CompiledPackage, WeightsSignatureEqualsTheExporters) {
  // scripts/export_bundle.py weights_signature({"b.w": (4, 32, 3, 3), "a.bias": (4,), "scalar": ()}).
  EXPECT_EQ(weights_signature({{"b.w", {4, 32, 3, 3}}, {"a.bias", {4}}, {"scalar", {}}}), "cd51819988ea1d9f");
  EXPECT_EQ(weights_signature({}), "cbf29ce484222325");
  EXPECT_NE(weights_signature({{"a.bias", {4}}}), weights_signature({{"a.bias", {8}}}));
}

}  // namespace
}  // namespace sdinterp
