// The whole flow of one walk: prompts -> conditioning -> plan -> batched sampling -> decode ->
// 8-bit frames -> sinks. The only place that knows every stage.
#pragma once

#include <torch/types.h>

#include <functional>
#include <string>
#include <vector>

#include "sdinterp/bundle.h"
#include "sdinterp/config.h"
#include "sdinterp/frame_sink.h"
#include "sdinterp/interpolation.h"
#include "sdinterp/sampler.h"

namespace sdinterp {

struct TextConditioning {
  torch::Tensor positive;  // [P, L, hidden] float32
  torch::Tensor negative;  // [Q, L, hidden], Q = 1 or P
  std::vector<Tokenization> positive_tokens;
  std::vector<Tokenization> negative_tokens;
};

// Tokenizes and encodes all prompts and negative prompts in one text-encoder call. No negative
// means "" for all.
TextConditioning encode_prompts(Bundle& bundle, const std::vector<std::string>& prompts,
                                const std::vector<std::string>& negatives);

// The texts a walk encodes: its prompts and negatives (a timeline: one of each per keyframe
// source, RunConfig::resolved_keyframes).
struct WalkTexts {
  std::vector<std::string> prompts, negatives;
};
WalkTexts walk_texts(const RunConfig& config);

// image [B, 3, H, W] in [-1, 1] -> 8-bit RGB frames, round(255 * clamp(x / 2 + 0.5, 0, 1)).
std::vector<Frame> to_frames(const torch::Tensor& image);

struct ProgressEvent {
  enum class Kind { kStart, kStep, kFrame, kDone } kind = Kind::kStart;
  int64_t frames_done = 0;
  int64_t frames_total = 0;
  int64_t calls_done = 0;  // UNet calls over all chunks
  int64_t calls_total = 0;
};

struct RunHooks {
  std::function<void(const ProgressEvent&)> progress;
  std::function<void(const std::string&)> warning;
  // Checked after every model call; returning true stops the run with InterruptedError.
  std::function<bool()> interrupted;
};

struct RunResult {
  uint64_t seed = 0;
  int64_t frames = 0;
  int width = 0;
  int height = 0;
  int batch = 0;
  // UNet calls made by the AOTInductor package and by the TorchScript module.
  int64_t unet_calls_compiled = 0, unet_calls_torchscript = 0;
  double seconds_text = 0, seconds_sampling = 0, seconds_decode = 0, seconds_total = 0;
  // --pace even: the UNet calls and seconds of the measuring passes (included in the above).
  int64_t pace_extra_unet_calls = 0;
  double seconds_pacing = 0;
  // The re-placed weight of each frame (NaN: as uniform, an end or a keyframe); empty if uniform.
  std::vector<double> pace_weights;
};

// Frames per UNet call: the config's --batch; else, on CUDA, as many as the free device memory
// (capped by --max-vram) holds; on the CPU, as many as half the available RAM holds (larger
// calls amortise each call's fixed cost), or kCpuDefaultBatch if that cannot be read. An
// automatic batch is also kept within what the compiled UNet takes when the run uses it, and
// evened out over the chunks (30 frames in chunks of at most 16: 15 + 15, not 16 + 14).
int choose_batch(const RunConfig& config, const Bundle& bundle, int64_t total_frames);

// Frames per call that keep the UNet batch (twice the frames with guidance) within `compiled`'s
// batch_max; at least 1.
int compiled_frames_cap(const Manifest::Unet::Compiled& compiled, bool guided);

// The same number of chunks as `batch` frames per call gives, with the frames spread evenly:
// ceil(total / ceil(total / batch)).
int even_batch(int batch, int64_t total_frames);

constexpr int kCpuDefaultBatch = 4;
// Frames per VAE decode call.
constexpr int64_t kDecodeChunk = 4;

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

// Runs `config` on `bundle` and hands every frame, in order, to each sink; finishes the sinks
// on success and aborts them on any failure. `config.seed` must be set.
RunResult run_walk(Bundle& bundle, const RunConfig& config, const std::vector<FrameSink*>& sinks,
                   const RunHooks& hooks = {});

// The sampler's settings for `config` (image-morph: started part way, as img2img at --strength).
SamplerSettings sampler_settings(const RunConfig& config);

// The latents a walk starts from, one per source: drawn from the seed (a timeline: from each
// keyframe's), or for image-morph the images' latents noised (--inversion noise) or inverted
// (ddim) to the level of the sampler's first call. `on_call` follows the inversion's model calls.
// With SDINTERP_DEBUG_START_LATENTS=FILE.npy set they are also written there (for the tests).
torch::Tensor source_latents(Bundle& bundle, const RunConfig& config, const TextConditioning& text,
                             const std::function<void()>& on_call = {});
// Model calls source_latents makes (image-morph with --inversion ddim).
int64_t source_latent_calls(const RunConfig& config);

// The plan alone (source_latents unless `sources` is given, conditioning), for tests and tools.
InterpolationPlan make_plan(Bundle& bundle, const RunConfig& config, const TextConditioning& text,
                            const std::vector<double>& t_override = {}, torch::Tensor sources = {});

}  // namespace sdinterp
