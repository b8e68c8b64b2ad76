// How many frames go into one UNet call: the rule, without a device.
#include <gtest/gtest.h>

#include "sdinterp/manifest.h"
#include "sdinterp/pipeline.h"
#include "test_support.h"

namespace sdinterp {
namespace {

Manifest sd15(const std::string& dtype) {
  Manifest m = load_manifest(test::tiny_sd());
  m.dtype = dtype;
  m.unet.cross_attention_dim = m.text_encoder.hidden_size = 768;
  m.unet.sample_size = 64;
  return m;
}

TEST(Batching, ActivationEstimateScalesWithAreaDtypeAndGuidance) {
  const Manifest half = sd15("float16");
  const int64_t base = frame_activation_bytes(half, 512, 512, /*guided=*/true);
  EXPECT_EQ(base, 110000000);  // two UNet batch elements of 55 MB
  EXPECT_EQ(frame_activation_bytes(half, 512, 512, false), base / 2);
  EXPECT_EQ(frame_activation_bytes(sd15("float32"), 512, 512, true), 2 * base);
  EXPECT_EQ(frame_activation_bytes(half, 768, 768, true), static_cast<int64_t>(base * 2.25));
}

TEST(Batching, BudgetRule) {
  EXPECT_EQ(batch_for_budget(1000, 100, 30), 10);
  EXPECT_EQ(batch_for_budget(1000, 100, 4), 4);  // never more than the frames
  EXPECT_EQ(batch_for_budget(50, 100, 30), 1);   // always at least one frame
  EXPECT_EQ(batch_for_budget(-5, 100, 30), 1);   // a cap below what is in use still runs
  EXPECT_EQ(batch_for_budget(1000, 0, 30), 30);
}

TEST(Batching, TheNotebookWalkFitsTenGibOnSd15) {
  // 30 frames of 512x512 with guidance on an fp16 SD-1.5 UNet: all frames in one call stay
  // under a 10 GiB cap once 1.7 GB of weights are resident.
  const int64_t per_frame = frame_activation_bytes(sd15("float16"), 512, 512, true);
  const int64_t cap = 10LL << 30;
  EXPECT_EQ(batch_for_budget(cap - 1700000000LL, per_frame, 30), 30);
  EXPECT_EQ(batch_for_budget(2LL << 30, per_frame, 30), 19);
}

TEST(Batching, ExplicitBatchAndCpuDefault) {
  static Bundle bundle = Bundle::load(test::tiny_sd(), parse_device("cpu"));
  RunConfig c;
  c.batch = 7;
  EXPECT_EQ(choose_batch(c, bundle, 30), 7);
  EXPECT_EQ(choose_batch(c, bundle, 5), 5);
  c.batch = 0;
  // tiny-sd's frames need a few kB each: any machine that runs the tests holds all 30 at once.
  EXPECT_EQ(choose_batch(c, bundle, 30), 30);
  EXPECT_EQ(choose_batch(c, bundle, 2), 2);
}

TEST(Batching, CpuBudgetIsHalfOfMemAvailable) {
  const std::string meminfo =
      "MemTotal:       24576000 kB\nMemFree:         1000000 kB\nMemAvailable:   20000000 kB\nBuffers: 1 kB\n";
  EXPECT_EQ(mem_available_bytes(meminfo), 20000000LL * 1024);
  EXPECT_EQ(mem_available_bytes("MemTotal: 5 kB\n"), -1);  // old kernels lack the field
  EXPECT_EQ(mem_available_bytes("MemAvailable: lots\n"), -1);
  // SD-1.5 at 512x512 in float32 on the CPU needs about 415 MB a frame (two batch elements of
  // 207 MB, measured): half of 20 GB available holds 24 of the notebook's 30 frames, half of 4 GiB 5.
  const int64_t per_frame = frame_activation_bytes(sd15("float32"), 512, 512, true, /*on_cpu=*/true);
  EXPECT_EQ(per_frame, 414000000);
  EXPECT_EQ(batch_for_budget(mem_available_bytes(meminfo) / 2, per_frame, 30), 24);
  EXPECT_EQ(batch_for_budget((4LL << 30) / 2, per_frame, 30), 5);
}

TEST(Batching, ChunksAreEvenedOut) {
  EXPECT_EQ(even_batch(16, 30), 15);  // 2 chunks: 15 + 15, not 16 + 14
  EXPECT_EQ(even_batch(31, 63), 21);  // 3 chunks of 21, not 31 + 31 + 1
  EXPECT_EQ(even_batch(31, 64), 22);  // 22 + 22 + 20
  EXPECT_EQ(even_batch(30, 30), 30);
  EXPECT_EQ(even_batch(1, 30), 1);
  EXPECT_EQ(even_batch(24, 30), 15);
  EXPECT_EQ(even_batch(7, 0), 7);
  for (int batch = 1; batch <= 40; ++batch) {
    for (int64_t total = 1; total <= 100; ++total) {
      const int64_t even = even_batch(batch, total);
      const int64_t chunks = (total + batch - 1) / batch;
      ASSERT_LE(even, std::max<int64_t>(1, batch));
      ASSERT_EQ((total + even - 1) / even, chunks) << batch << " " << total;
    }
  }
}

TEST(Batching, CompiledUnetCapsFramesPerCall) {
  Manifest::Compiled c;
  c.file = "unet.pt2";
  c.batch_max = 63;
  EXPECT_EQ(compiled_frames_cap(c, /*guided=*/true), 31);
  EXPECT_EQ(compiled_frames_cap(c, /*guided=*/false), 63);
  c.batch_max = 1;
  EXPECT_EQ(compiled_frames_cap(c, true), 1);
}

TEST(Batching, ExplicitBatchIsNotEvenedOut) {
  static Bundle bundle = Bundle::load(test::tiny_sd(), parse_device("cpu"));
  RunConfig c;
  c.batch = 16;
  EXPECT_EQ(choose_batch(c, bundle, 30), 16);
}

TEST(Batching, DecodeEstimateScalesWithAreaAndDtype) {
  EXPECT_EQ(decode_frame_bytes(sd15("float16"), 512, 512), 1230000000);
  EXPECT_EQ(decode_frame_bytes(sd15("float32"), 512, 512), 2460000000);
  EXPECT_EQ(decode_frame_bytes(sd15("float16"), 1024, 1024), 4 * 1230000000LL);
  EXPECT_EQ(decode_frame_bytes(sd15("float32"), 512, 512, /*on_cpu=*/true), 900000000);
  EXPECT_EQ(decode_frame_bytes(sd15("float32"), 256, 256, true), 225000000);
}

TEST(Batching, DecodeChunkRule) {
  // SD-1.5 float16 at 512x512 on CUDA without --max-vram: the default decode budget holds 5 frames,
  // 5 + 5 + ... over a call of 30 frames; at 1024x1024 1 frame a call.
  const int64_t half = decode_frame_bytes(sd15("float16"), 512, 512);
  EXPECT_EQ(decode_chunk_for_budget(kCudaDecodeBudgetBytes, half, 30), 5);
  EXPECT_EQ(decode_chunk_for_budget(kCudaDecodeBudgetBytes, 4 * half, 30), 1);
  // Weights and context resident (about 2.5 GiB) plus the decode stay under 10 GiB.
  EXPECT_LT((int64_t{5} << 29) + 5 * half, int64_t{10} << 30);
  // A small GPU decodes what fits, at least one frame; never more frames than the call has.
  EXPECT_EQ(decode_chunk_for_budget(int64_t{1} << 30, half, 30), 1);
  EXPECT_EQ(decode_chunk_for_budget(-1, half, 30), 1);
  EXPECT_EQ(decode_chunk_for_budget(int64_t{80} << 30, half, 6), 6);
  // The CPU's cap, evened: 30 frames in calls of at most 4 -> 8 calls of 4 (the last padded).
  EXPECT_EQ(decode_chunk_for_budget(int64_t{10} << 30, half, 30, kCpuDecodeChunk), 4);
  EXPECT_EQ(decode_chunk_for_budget(int64_t{10} << 30, half, 5, kCpuDecodeChunk), 3);
  EXPECT_EQ(decode_chunk_for_budget(0, 0, 30, kCpuDecodeChunk), 4);  // memory unknown
}

TEST(Batching, DecodeChunkOnTheCpu) {
  static Bundle bundle = Bundle::load(test::tiny_sd(), parse_device("cpu"));
  RunConfig c;
  EXPECT_EQ(choose_decode_chunk(c, bundle, 30), kCpuDecodeChunk);
  EXPECT_EQ(choose_decode_chunk(c, bundle, 3), 3);
  EXPECT_EQ(choose_decode_chunk(c, bundle, 1), 1);
}

}  // namespace
}  // namespace sdinterp
