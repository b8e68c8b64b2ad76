// The whole flow of one walk: prompts -> conditioning -> plan -> batched sampling -> decode ->
// 8-bit frames -> sinks. The only place that knows every stage.
#pragma once

#include <torch/types.h>

#include <functional>
#include <string>
#include <vector>

#include "sdinterp/batching.h"
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
TextConditioning encode_prompts(const Bundle& bundle, const std::vector<std::string>& prompts,
                                const std::vector<std::string>& negatives);

// The texts a walk encodes: its prompts and negatives (a timeline: one of each per keyframe
// source, RunConfig::resolved_keyframes).
struct WalkTexts {
  std::vector<std::string> prompts, negatives;
};
WalkTexts walk_texts(const RunConfig& config);

// image [B, 3, H, W] in [-1, 1] -> 8-bit RGB frames, round(255 * clamp(x / 2 + 0.5, 0, 1)).
std::vector<Frame> to_frames(const torch::Tensor& image);

// The warnings about a job's texts: one per prompt cut at the model's token limit ("--prompt 2 is
// longer than the model reads (77 tokens): 5 tokens cut, dropped text: ..."), and one when a
// negative prompt is given to a walk without guidance (--guidance 1 or less), which never reads it.
std::vector<std::string> text_warnings(const RunConfig& config, const TextConditioning& text, int max_length);

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
  int decode_chunk = 0;  // frames per VAE decode call
  // UNet calls and VAE decode calls made by the AOTInductor packages and by the TorchScript modules.
  Bundle::ModuleCalls unet_calls, decode_calls;
  double seconds_text = 0, seconds_sampling = 0, seconds_decode = 0, seconds_total = 0;
  // On CUDA, the caching allocator's peaks in the sampling and in the decode phases, in bytes (the
  // reserved peak of a phase counts what earlier phases left cached); -1 on the CPU.
  int64_t peak_allocated_sampling = -1, peak_reserved_sampling = -1;
  int64_t peak_allocated_decode = -1, peak_reserved_decode = -1;
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
// evened out over the chunks (30 frames in chunks of at most 16: 15 + 15, not 16 + 14). The
// rules themselves: sdinterp/batching.h.
int choose_batch(const RunConfig& config, const Bundle& bundle, int64_t total_frames);

// Frames per VAE decode call for UNet calls of `frames_per_call` frames: as many as the memory
// budget of choose_batch holds (decode_frame_bytes per frame), evened out over the call's frames;
// on the CPU at most kCpuDecodeChunk, on CUDA without --max-vram within kCudaDecodeBudgetBytes
// (sdinterp/batching.h), and within the compiled VAE decoder's batches when it takes the size.
int choose_decode_chunk(const RunConfig& config, const Bundle& bundle, int64_t frames_per_call);

// latents [n, C, h, w] -> n 8-bit frames, handed to `each_frame` in order as each chunk of `chunk`
// frames is decoded (a GIF encoder works on them while the next chunk decodes). A short last chunk
// is padded to the same size: TorchScript compiles its graph again for each new input shape (on an
// H200 a tail chunk of another size cost about 0.5 s in every job). `after_decode` is called after
// each decode call, before its frames are handed on (interrupt checks). The calls are counted in
// `*calls` when given (compiled decoder or TorchScript).
void decode_frames(const Bundle& bundle, const torch::Tensor& latents, int64_t chunk,
                   const std::function<void()>& after_decode, const std::function<void(const Frame&)>& each_frame,
                   Bundle::ModuleCalls* calls = nullptr);

// Runs `config` (validated: RunConfig::validate, validate_for) on `bundle` and hands every frame,
// in order, to each sink; finishes the sinks on success and aborts them on any failure.
// `config.seed` must be set.
RunResult run_walk(const Bundle& bundle, const RunConfig& config, const std::vector<FrameSink*>& sinks,
                   const RunHooks& hooks = {});

// The sampler's settings for `config` (image-morph: started part way, as img2img at --strength).
SamplerSettings sampler_settings(const RunConfig& config);

// The latents a walk starts from, one per source: drawn from the seed (a timeline: from each
// keyframe's), or for image-morph the images' latents noised (--inversion noise) or inverted
// (ddim) to the level of the sampler's first call. `on_call` follows the inversion's model calls.
// With SDINTERP_DEBUG_START_LATENTS=FILE.npy set they are also written there (for the tests).
torch::Tensor source_latents(const Bundle& bundle, const RunConfig& config, const TextConditioning& text,
                             const std::function<void()>& on_call = {});
// Model calls source_latents makes (image-morph with --inversion ddim).
int64_t source_latent_calls(const RunConfig& config);

// The plan alone (source_latents unless `sources` is given, conditioning), for tests and tools.
InterpolationPlan make_plan(const Bundle& bundle, const RunConfig& config, const TextConditioning& text,
                            const std::vector<double>& t_override = {}, torch::Tensor sources = {});

}  // namespace sdinterp
