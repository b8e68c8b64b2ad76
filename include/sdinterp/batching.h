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
// Frames per VAE decode call.
constexpr int64_t kDecodeChunk = 4;

// Frames per call that keep the UNet batch (twice the frames with guidance) within `compiled`'s
// batch_max; at least 1.
int compiled_frames_cap(const Manifest::Unet::Compiled& compiled, bool guided);

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
