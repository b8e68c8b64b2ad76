// How a walk's frames are grouped into UNet calls, without a device: the memory heuristics behind
// the automatic batch, the evening-out of chunks, and the render order (frames equal by
// construction rendered once, written in order). No torch.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sdinterp/frame_sink.h"
#include "sdinterp/manifest.h"

namespace sdinterp {

constexpr int kCpuDefaultBatch = 4;
// Frames per VAE decode call on the CPU, at most (fewer where memory is short): larger calls gain
// little there, and smaller ones let an encoder work on the frames while the next call decodes.
// Also the chunk when the free memory cannot be read.
constexpr int kCpuDecodeChunk = 4;
// On CUDA without --max-vram, the decode's activations are kept within this many bytes: an SD-1.5
// job at 512x512 in float16 (about 2.5 GiB of weights and CUDA context, 1.23 GB per decoded frame)
// then should peak near 8.3 GiB with 5 frames per call (estimated; not yet measured on a GPU), and
// larger images decode in fewer frames per call.
constexpr int64_t kCudaDecodeBudgetBytes = int64_t{6} << 30;

// Frames per call that keep the UNet batch (twice the frames with guidance) within `compiled`'s
// batch_max; at least 1.
int compiled_frames_cap(const Manifest::Compiled& compiled, bool guided);

// The same number of chunks as `batch` frames per call gives, with the frames spread evenly:
// ceil(total / ceil(total / batch)).
int even_batch(int batch, int64_t total_frames);

// MemAvailable from the text of /proc/meminfo, in bytes; -1 if absent.
int64_t mem_available_bytes(const std::string& meminfo);

// Memory one frame's denoising needs at once (activations of its UNet call, both guidance
// halves). Scaled from measured SD-1.5 UNets at 64x64 latents: on CUDA in fp16, 5.0 GB peak at
// batch 60 with 1.7 GB of weights, about 55 MB per UNet batch element; on the CPU in fp32
// (oneDNN), 207 MB per batch element (peak RSS above the weights at batch 2 and 6).
int64_t frame_activation_bytes(const Manifest& manifest, int height, int width, bool guided, bool on_cpu = false);

// Memory one frame's VAE decode needs at once. Measured for Stable Diffusion's VAE decoder (the
// same in SD 1.x, 2.x and XL: 128 channels at full size) at 512x512: on the CPU in float32, 0.9 GB
// per frame (peak RSS above the weights, TorchScript, 1 and 2 frames per call); on CUDA in float16,
// 1.23 GB: the device's peak on an H100 (nvml) was 13.96 GiB decoding 10 frames a call, about
// 2.5 GiB of it weights and context; diffusers' 30-frame decode gives 1.1 GiB a frame the same way
// (35.65 GiB). Its peak allocated memory, 0.54 GB a frame, was planned with until 2026-12-06 and
// left the job at 14 GiB, --max-vram 10 too. Grows with the image area and the element size.
int64_t decode_frame_bytes(const Manifest& manifest, int height, int width, bool on_cpu = false);

// Frames per VAE decode call for calls of `frames` latents: as many as `budget_bytes` holds, at
// most `cap` (0: no cap), at least 1, evened out over `frames` (15 + 15, not 16 + 14).
int decode_chunk_for_budget(int64_t budget_bytes, int64_t per_frame_bytes, int64_t frames, int cap = 0);

// The chunking rule itself, free of devices: frames that fit `budget_bytes` (at least 1, at
// most `total_frames`).
int batch_for_budget(int64_t budget_bytes, int64_t per_frame_bytes, int64_t total_frames);

// Which frames of a walk are rendered, in which chunks, and how the written sequence is made
// from them. `same_as[i]` is the first frame equal to frame i by construction (i itself when
// none: InterpolationPlan::first_equal_frames); only those are rendered.
class RenderOrder {
 public:
  explicit RenderOrder(std::vector<int64_t> same_as, int batch = 1);
  // Frames per UNet call (at least 1), chosen once the number of rendered frames is known.
  void set_batch(int batch) { batch_ = batch < 1 ? 1 : batch; }
  // The frames rendered, in order.
  const std::vector<int64_t>& rendered() const { return rendered_; }
  int64_t total() const { return static_cast<int64_t>(same_as_.size()); }
  int batch() const { return batch_; }
  struct Chunk {
    int64_t first, count;  // a range of rendered()
  };
  // The UNet calls' chunks: `batch` rendered frames each, the last one shorter.
  std::vector<Chunk> chunks() const;

  // Writes the walk's frames in order as rendered frames arrive (in rendered() order): each one,
  // and before it the repeats of earlier frames it waited for; finish() writes the repeats after
  // the last one. Keeps only the rendered frames that later frames repeat.
  class Writer {
   public:
    Writer(const RenderOrder& order, std::function<void(const Frame&)> write);
    // The next rendered frame, `index` in the walk.
    void add(int64_t index, const Frame& frame);
    void finish();

   private:
    void write_through(int64_t last, const Frame* current);
    const RenderOrder& order_;
    std::function<void(const Frame&)> write_;
    std::vector<Frame> kept_;  // by walk index; empty unless a later frame repeats it
    int64_t next_ = 0;
  };

 private:
  std::vector<int64_t> same_as_;
  std::vector<int64_t> rendered_;
  std::vector<bool> repeated_;  // a rendered frame that later frames repeat
  int batch_;
};

}  // namespace sdinterp
