#include "sdinterp/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>

#include "io/png_io.h"
#include "sdinterp/errors.h"
#include "sdinterp/number_text.h"
#include "sdinterp/pacing.h"
#include "sdinterp/sampler.h"
#include "sdinterp/smoothness.h"

namespace sdinterp {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

int resolved_size(int asked, const Manifest& m) { return asked > 0 ? asked : m.native_size(); }

// The latents' height and width for `config`'s image size (the native one when unset).
std::pair<int64_t, int64_t> latent_size(const RunConfig& config, const Manifest& m) {
  return {resolved_size(config.height, m) / m.vae.scale_factor, resolved_size(config.width, m) / m.vae.scale_factor};
}

// --pace even's measuring pass: keeps each frame, scaled down to at most 128 px a side (box
// averages), and measures the distance between two of them as the smoothness report does.
class PaceMeter : public FrameSink {
 public:
  explicit PaceMeter(int64_t frames) : frames_(static_cast<size_t>(frames)) {}
  void begin(int, int, int) override {}
  void add(const Frame& frame) override { frames_.at(next_++) = scaled(frame); }
  void finish() override {}
  void abort() override {}
  std::string description() const override { return ""; }
  double distance(int64_t a, int64_t b) const {
    return frame_distance(frames_.at(static_cast<size_t>(a)), frames_.at(static_cast<size_t>(b)));
  }

 private:
  static Frame scaled(const Frame& f) {
    const int factor = std::max(1, (std::max(f.width, f.height) + 127) / 128);
    if (factor == 1) return f;
    Frame out;
    out.width = f.width / factor;
    out.height = f.height / factor;
    out.rgb.resize(static_cast<size_t>(out.width) * out.height * 3);
    for (int y = 0; y < out.height; ++y) {
      for (int x = 0; x < out.width; ++x) {
        for (int c = 0; c < 3; ++c) {
          int sum = 0;
          for (int dy = 0; dy < factor; ++dy) {
            for (int dx = 0; dx < factor; ++dx) {
              sum += f.rgb[(static_cast<size_t>(y * factor + dy) * f.width + static_cast<size_t>(x * factor + dx)) * 3 +
                           c];
            }
          }
          out.rgb[(static_cast<size_t>(y) * out.width + x) * 3 + c] =
              static_cast<uint8_t>((sum + factor * factor / 2) / (factor * factor));
        }
      }
    }
    return out;
  }
  std::vector<Frame> frames_;
  size_t next_ = 0;
};

}  // namespace

TextConditioning encode_prompts(const Bundle& bundle, const std::vector<std::string>& prompts,
                                const std::vector<std::string>& negatives) {
  TextConditioning out;
  const std::vector<std::string> neg = negatives.empty() ? std::vector<std::string>{""} : negatives;
  // The prompts in one call and the negative prompts in another, as diffusers' encode_prompt and
  // the notebook batch them: the encoder's roundings depend on the batch, and one batch of both
  // flipped 8-bit values of the golden multi-prompt walk's frames.
  auto encode = [&](const std::vector<std::string>& texts, std::vector<Tokenization>& tokens) {
    std::vector<torch::Tensor> ids;
    for (const auto& text : texts) {
      tokens.push_back(bundle.tokenizer().encode(text));
      ids.push_back(torch::tensor(tokens.back().ids, torch::kInt64));
    }
    return bundle.encode_text(torch::stack(ids));
  };
  out.positive = encode(prompts, out.positive_tokens);
  out.negative = encode(neg, out.negative_tokens);
  return out;
}

std::vector<Frame> to_frames(const torch::Tensor& image) {
  torch::Tensor bytes = ((image.to(torch::kFloat32) / 2 + 0.5).clamp(0, 1) * 255)
                            .round()
                            .to(torch::kUInt8)
                            .permute({0, 2, 3, 1})
                            .contiguous()
                            .cpu();
  std::vector<Frame> frames;
  const int64_t n = bytes.size(0), h = bytes.size(1), w = bytes.size(2);
  const uint8_t* data = bytes.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    Frame f;
    f.width = static_cast<int>(w);
    f.height = static_cast<int>(h);
    f.rgb.assign(data + i * h * w * 3, data + (i + 1) * h * w * 3);
    frames.push_back(std::move(f));
  }
  return frames;
}

namespace {

// The bytes a job's model calls may take on its device, beyond what is in use: on the CPU half of
// MemAvailable; on CUDA four fifths of the free memory (the rest is the allocator's slack), within
// --max-vram. -1 when it cannot be read.
int64_t memory_budget(const RunConfig& config, const Bundle& bundle) {
  if (!bundle.device().is_cuda()) {
    std::ifstream in("/proc/meminfo");
    std::stringstream text;
    text << in.rdbuf();
    const int64_t available = mem_available_bytes(text.str());
    return available <= 0 ? -1 : available / 2;
  }
  int64_t free_bytes = 0, total_bytes = 0;
  if (!bundle.device_memory(free_bytes, total_bytes)) return -1;
  int64_t budget = static_cast<int64_t>(static_cast<double>(free_bytes) * 0.8);
  if (config.max_vram_gb > 0) {
    const int64_t in_use = total_bytes - free_bytes;
    budget = std::min(budget, static_cast<int64_t>(config.max_vram_gb * double(1 << 30)) - in_use);
  }
  return budget;
}

int memory_batch(const RunConfig& config, const Bundle& bundle, int64_t total_frames) {
  const Manifest& m = bundle.manifest();
  const int height = resolved_size(config.height, m), width = resolved_size(config.width, m);
  const int64_t per_frame =
      frame_activation_bytes(m, height, width, sdinterp::guided(config.guidance), !bundle.device().is_cuda());
  const int64_t budget = memory_budget(config, bundle);
  if (budget < 0) return static_cast<int>(std::min<int64_t>(kCpuDefaultBatch, total_frames));
  return batch_for_budget(budget, per_frame, total_frames);
}

}  // namespace

int choose_batch(const RunConfig& config, const Bundle& bundle, int64_t total_frames) {
  if (config.batch > 0) return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(config.batch, total_frames)));
  int batch = memory_batch(config, bundle, total_frames);
  const Manifest& m = bundle.manifest();
  const bool guided = sdinterp::guided(config.guidance);
  const auto [lh, lw] = latent_size(config, m);
  if (bundle.uses_compiled(m.unet.compiled.batch_max, lh, lw)) {
    batch = std::min(batch, compiled_frames_cap(m.unet.compiled, guided));
  }
  return even_batch(batch, total_frames);
}

int choose_decode_chunk(const RunConfig& config, const Bundle& bundle, int64_t frames_per_call) {
  const Manifest& m = bundle.manifest();
  const bool on_cpu = !bundle.device().is_cuda();
  const int64_t per_frame =
      decode_frame_bytes(m, resolved_size(config.height, m), resolved_size(config.width, m), on_cpu);
  int64_t budget = memory_budget(config, bundle);
  if (budget < 0) return decode_chunk_for_budget(0, 0, frames_per_call, kCpuDecodeChunk);
  if (!on_cpu && config.max_vram_gb <= 0) budget = std::min(budget, kCudaDecodeBudgetBytes);
  int cap = on_cpu ? kCpuDecodeChunk : 0;
  const auto& compiled = m.vae.compiled;
  const auto [lh, lw] = latent_size(config, m);
  if (bundle.decodes_compiled(compiled.batch_max, lh, lw))
    cap = cap > 0 ? std::min(cap, compiled.batch_max) : compiled.batch_max;
  return decode_chunk_for_budget(budget, per_frame, frames_per_call, cap);
}

WalkTexts walk_texts(const RunConfig& config) {
  if (config.mode != WalkMode::kTimeline) return {config.prompts, config.negatives};
  WalkTexts texts;
  for (const auto& k : config.resolved_keyframes()) {
    if (k.source != static_cast<int>(texts.prompts.size())) continue;  // shares an earlier keyframe's
    texts.prompts.push_back(k.prompt);
    texts.negatives.push_back(k.negative);
  }
  return texts;
}

SamplerSettings sampler_settings(const RunConfig& config) {
  SamplerSettings settings{config.scheduler, config.steps, config.guidance};
  if (config.mode == WalkMode::kImageMorph) {
    settings.first_call = static_cast<size_t>(config.steps - strength_steps(config.steps, config.strength));
    settings.noised_start = true;
  }
  return settings;
}

int64_t source_latent_calls(const RunConfig& config) {
  if (config.mode != WalkMode::kImageMorph || config.inversion != Inversion::kDdim) return 0;
  return static_cast<int64_t>(config.images.size()) * strength_steps(config.steps, config.strength);
}

namespace {

// An image brought to height x width as --fit says: float [1, 3, height, width] in [-1, 1].
// Resizing is bilinear with antialiasing (PyTorch's interpolate(antialias=True), as PIL's
// BILINEAR); an image of the walk's size is used as it is.
torch::Tensor fitted_image(const Frame& image, int height, int width, Fit fit) {
  torch::Tensor x =
      torch::from_blob(const_cast<uint8_t*>(image.rgb.data()), {image.height, image.width, 3}, torch::kUInt8)
          .permute({2, 0, 1})
          .unsqueeze(0)
          .to(torch::kFloat32);
  auto resized = [&](int64_t h, int64_t w) {
    if (h == image.height && w == image.width) return x;
    // What torch.nn.functional.interpolate(x, size, mode="bilinear", antialias=True) calls.
    return at::_upsample_bilinear2d_aa(x, {h, w}, /*align_corners=*/false);
  };
  // The side that decides the scale: the one that covers (crop) or fits (pad) exactly.
  const double by_width = static_cast<double>(width) / image.width,
               by_height = static_cast<double>(height) / image.height;
  const bool width_rules = fit == Fit::kCrop ? by_width >= by_height : by_width <= by_height;
  const int64_t h = width_rules ? std::max<int64_t>(1, std::llround(image.height * by_width)) : height;
  const int64_t w = width_rules ? width : std::max<int64_t>(1, std::llround(image.width * by_height));
  torch::Tensor out;
  if (fit == Fit::kStretch) {
    out = resized(height, width);
  } else if (fit == Fit::kCrop) {
    out = resized(h, w)
              .slice(2, (h - height) / 2, (h - height) / 2 + height)
              .slice(3, (w - width) / 2, (w - width) / 2 + width);
  } else {
    out = torch::full({1, 3, height, width}, 255.0f);
    out.slice(2, (height - h) / 2, (height - h) / 2 + h)
        .slice(3, (width - w) / 2, (width - w) / 2 + w)
        .copy_(resized(h, w));
  }
  return out / 255.0f * 2.0f - 1.0f;
}

// Writes a float32 tensor as a NumPy .npy file (version 1.0).
void write_npy(const std::string& path, const torch::Tensor& tensor) {
  const torch::Tensor t = tensor.to(torch::kCPU, torch::kFloat32).contiguous();
  std::string shape;
  for (int64_t d : t.sizes()) shape += std::to_string(d) + ", ";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + shape + "), }";
  header += std::string(63 - (10 + header.size()) % 64, ' ') + "\n";
  const uint16_t length = static_cast<uint16_t>(header.size());
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
  bytes.append(reinterpret_cast<const char*>(&length), 2);
  bytes += header;
  bytes.append(reinterpret_cast<const char*>(t.data_ptr<float>()), static_cast<size_t>(t.numel()) * sizeof(float));
  std::ofstream out(path, std::ios::binary);
  out << bytes;
  if (!out) throw IoError("cannot write " + path + " (SDINTERP_DEBUG_START_LATENTS)");
}

torch::Tensor image_sources(const Bundle& bundle, const RunConfig& config, const TextConditioning& text,
                            const std::function<void()>& on_call) {
  const Manifest& m = bundle.manifest();
  const int height = resolved_size(config.height, m), width = resolved_size(config.width, m);
  std::vector<torch::Tensor> clean;
  for (const std::string& path : config.images) {
    clean.push_back(bundle.encode_image(fitted_image(io::read_input_image(path), height, width, config.fit)));
  }
  const torch::Tensor latents = torch::cat(clean);
  Sampler sampler(bundle, sampler_settings(config));
  if (config.inversion == Inversion::kNoise) {
    // One noise tensor for every image, drawn as diffusers' img2img draws it from the seed.
    return sampler.add_noise(latents,
                             draw_latents(*config.seed, {1, latents.size(1), latents.size(2), latents.size(3)}));
  }
  // Each image inverted with its own prompt (the one prompt when there is one for all).
  const int64_t k = latents.size(0);
  const torch::Tensor context =
      text.positive.size(0) == k ? text.positive : text.positive.slice(0, 0, 1).expand({k, -1, -1});
  std::vector<torch::Tensor> inverted;
  for (int64_t i = 0; i < k; ++i) {
    inverted.push_back(sampler.invert(latents.slice(0, i, i + 1), context.slice(0, i, i + 1),
                                      [&](size_t, size_t, const torch::Tensor&) {
                                        if (on_call) on_call();
                                      }));
  }
  return torch::cat(inverted);
}

}  // namespace

torch::Tensor source_latents(const Bundle& bundle, const RunConfig& config, const TextConditioning& text,
                             const std::function<void()>& on_call) {
  const Manifest& m = bundle.manifest();
  const auto [h, w] = latent_size(config, m);
  torch::Tensor latents;
  if (config.mode == WalkMode::kImageMorph) {
    latents = image_sources(bundle, config, text, on_call);
  } else if (config.mode == WalkMode::kTimeline) {
    // One latent per keyframe source, each drawn from its own seed as prompt-walk draws it.
    std::vector<torch::Tensor> drawn;
    for (const auto& k : config.resolved_keyframes()) {
      if (k.source == static_cast<int>(drawn.size()))
        drawn.push_back(draw_latents(k.seed, {1, m.unet.in_channels, h, w}));
    }
    latents = torch::cat(drawn);
  } else {
    latents = draw_latents(*config.seed, latent_source_shape(config.mode, m.unet.in_channels, h, w));
  }
  if (const char* path = std::getenv("SDINTERP_DEBUG_START_LATENTS"); path != nullptr && *path != '\0') {
    write_npy(path, latents);
  }
  return latents.to(bundle.device());
}

InterpolationPlan make_plan(const Bundle& bundle, const RunConfig& config, const TextConditioning& text,
                            const std::vector<double>& t_override, torch::Tensor sources) {
  if (!sources.defined()) sources = source_latents(bundle, config, text);
  return InterpolationPlan(config, std::move(sources), text.positive, text.negative, t_override);
}

std::vector<std::string> text_warnings(const RunConfig& config, const TextConditioning& text, int max_length) {
  const WalkTexts texts = walk_texts(config);
  const bool timeline = config.mode == WalkMode::kTimeline;
  std::vector<std::string> out;
  auto check = [&](const std::vector<Tokenization>& toks, const std::vector<std::string>& given, const char* what) {
    for (size_t i = 0; i < toks.size() && i < given.size(); ++i) {
      if (toks[i].truncated > 0) {
        out.push_back(std::string(what) + " " + std::to_string(i + 1) + " is longer than the model reads (" +
                      std::to_string(max_length) + " tokens): " + count_text(toks[i].truncated, "token") +
                      " cut, dropped text: \"" + toks[i].dropped_text + "\"");
      }
    }
  };
  check(text.positive_tokens, texts.prompts, timeline ? "the prompt of keyframe source" : "--prompt");
  check(text.negative_tokens, texts.negatives, timeline ? "the negative of keyframe source" : "--negative");
  const bool any_negative =
      std::any_of(texts.negatives.begin(), texts.negatives.end(), [](const std::string& n) { return !n.empty(); });
  if (!guided(config.guidance) && any_negative) {
    out.push_back(std::string(timeline ? "the keyframes' negative prompts have" : "--negative has") +
                  " no effect: --guidance " + number_text(config.guidance) +
                  " is 1 or less, so the walk is not guided and reads no negative prompt");
  }
  return out;
}

void decode_frames(const Bundle& bundle, const torch::Tensor& latents, int64_t chunk,
                   const std::function<void()>& after_decode, const std::function<void(const Frame&)>& each_frame,
                   Bundle::ModuleCalls* calls) {
  const int64_t count = latents.size(0);
  chunk = std::max<int64_t>(1, chunk);
  for (int64_t d = 0; d < count; d += chunk) {
    const int64_t n = std::min<int64_t>(chunk, count - d);
    torch::Tensor part = latents.slice(0, d, d + n);
    if (n < chunk && count > chunk) {
      part = torch::cat({part, part.slice(0, n - 1, n).expand({chunk - n, -1, -1, -1})});
    }
    const torch::Tensor image = bundle.decode(part, calls).slice(0, 0, n);
    if (after_decode) after_decode();
    for (const Frame& frame : to_frames(image)) each_frame(frame);
  }
}

namespace {

// The sinks of one walk: begun, fed and finished together, and aborted when the walk leaves
// without finishing them (an error, an interrupt).
class SinkGroup {
 public:
  explicit SinkGroup(std::vector<FrameSink*> sinks) : sinks_(std::move(sinks)) {}
  SinkGroup(const SinkGroup&) = delete;
  SinkGroup& operator=(const SinkGroup&) = delete;
  ~SinkGroup() {
    if (finished_) return;
    for (FrameSink* sink : sinks_) sink->abort();
  }
  void begin(int width, int height, int frames) {
    for (FrameSink* sink : sinks_) sink->begin(width, height, frames);
  }
  void add(const Frame& frame) {
    for (FrameSink* sink : sinks_) sink->add(frame);
  }
  // Finishes each sink, calling `before_each` first (interrupt checks).
  void finish(const std::function<void()>& before_each) {
    for (FrameSink* sink : sinks_) {
      before_each();
      sink->finish();
    }
    finished_ = true;
  }

 private:
  std::vector<FrameSink*> sinks_;
  bool finished_ = false;
};

// One pass of a walk's rendering: the frames of `plan` in `order`, sampled chunk by chunk,
// decoded and written in order to `sinks`, with progress and interrupt checks.
class WalkRenderer {
 public:
  WalkRenderer(const Bundle& bundle, Sampler& sampler, const RenderOrder& order, const RunHooks& hooks,
               ProgressEvent& event, RunResult& result)
      : bundle_(bundle), sampler_(sampler), order_(order), hooks_(hooks), event_(event), result_(result) {}

  void render(const InterpolationPlan& plan, SinkGroup& sinks) {
    RenderOrder::Writer writer(order_, [&](const Frame& frame) {
      sinks.add(frame);
      ++event_.frames_done;
      report(ProgressEvent::Kind::kFrame);
    });
    const std::vector<int64_t>& rendered = order_.rendered();
    bundle_.reset_memory_peaks();  // then after each phase (keep_peaks)
    for (const RenderOrder::Chunk& c : order_.chunks()) {
      const FrameChunk chunk =
          plan.chunk(std::vector<int64_t>(rendered.begin() + c.first, rendered.begin() + c.first + c.count));
      auto phase = Clock::now();
      const torch::Tensor latents =
          sampler_.run(chunk.latents, chunk.positive, chunk.negative, [&](size_t, size_t, const torch::Tensor&) {
            ++event_.calls_done;
            stop_if_interrupted();
            report(ProgressEvent::Kind::kStep);
          });
      result_.seconds_sampling += seconds_since(phase);
      keep_peaks(result_.peak_allocated_sampling, result_.peak_reserved_sampling);
      phase = Clock::now();
      int64_t k = c.first;
      decode_frames(
          bundle_, latents, result_.decode_chunk, [&] { stop_if_interrupted(); },
          [&](const Frame& frame) { writer.add(rendered[static_cast<size_t>(k++)], frame); }, &result_.decode_calls);
      result_.seconds_decode += seconds_since(phase);
      keep_peaks(result_.peak_allocated_decode, result_.peak_reserved_decode);
    }
    writer.finish();  // repeats after the last rendered frame
  }

  // The device memory peaks since the last reset, kept as a phase's largest (bundle_.memory_peaks);
  // then reset for the next phase.
  void keep_peaks(int64_t& allocated, int64_t& reserved) const {
    Bundle::MemoryPeaks peaks;
    if (!bundle_.memory_peaks(peaks)) return;
    allocated = std::max(allocated, peaks.allocated);
    reserved = std::max(reserved, peaks.reserved);
    bundle_.reset_memory_peaks();
  }

  // Checked between model calls, decoded chunks and outputs: a signal stops every phase within
  // about one of these.
  void stop_if_interrupted() const {
    if (hooks_.interrupted && hooks_.interrupted()) throw InterruptedError();
  }
  void report(ProgressEvent::Kind kind) {
    event_.kind = kind;
    if (hooks_.progress) hooks_.progress(event_);
  }

 private:
  const Bundle& bundle_;
  Sampler& sampler_;
  const RenderOrder& order_;
  const RunHooks& hooks_;
  ProgressEvent& event_;
  RunResult& result_;
};

}  // namespace

RunResult run_walk(const Bundle& bundle, const RunConfig& config, const std::vector<FrameSink*>& sinks,
                   const RunHooks& hooks) {
  if (!config.seed) throw std::logic_error("run_walk: the seed must be set");
  const auto start = Clock::now();
  SinkGroup outputs(sinks);
  RunResult result;
  result.seed = *config.seed;
  result.width = resolved_size(config.width, bundle.manifest());
  result.height = resolved_size(config.height, bundle.manifest());
  const int factor = bundle.manifest().vae.scale_factor;
  bundle.check_engine(result.height / factor, result.width / factor);
  auto phase = Clock::now();
  const WalkTexts texts = walk_texts(config);
  const TextConditioning text = encode_prompts(bundle, texts.prompts, texts.negatives);
  if (hooks.warning) {
    for (const std::string& w : text_warnings(config, text, bundle.manifest().tokenizer.max_length)) hooks.warning(w);
  }
  result.seconds_text = seconds_since(phase);

  ProgressEvent event;
  Sampler sampler(bundle, sampler_settings(config));
  // image-morph's inversion runs before the plan exists: its calls are counted with the walk's
  // (reported from the start event on).
  event.calls_total = source_latent_calls(config);
  auto stop_if_interrupted = [&hooks] {
    if (hooks.interrupted && hooks.interrupted()) throw InterruptedError();
  };
  stop_if_interrupted();
  const torch::Tensor sources = source_latents(bundle, config, text, [&] {
    ++event.calls_done;
    stop_if_interrupted();
  });
  InterpolationPlan plan = make_plan(bundle, config, text, {}, sources);
  const int64_t total = plan.size();
  result.frames = total;
  // Frames equal by construction (a timeline's holds, repeated keyframes) are rendered once.
  RenderOrder order(plan.first_equal_frames());
  order.set_batch(choose_batch(config, bundle, static_cast<int64_t>(order.rendered().size())));
  result.batch = order.batch();
  result.decode_chunk = choose_decode_chunk(config, bundle, order.batch());
  const int64_t calls_per_chunk = static_cast<int64_t>(sampler.calls_per_run());
  // --pace even renders the walk `pace_passes` times to measure it before the pass that is written.
  const int passes = config.pace == Pace::kEven ? config.pace_passes + 1 : 1;

  event.kind = ProgressEvent::Kind::kStart;
  event.frames_total = total * passes;
  event.calls_total += calls_per_chunk * static_cast<int64_t>(order.chunks().size()) * passes;
  if (hooks.progress) hooks.progress(event);

  WalkRenderer renderer(bundle, sampler, order, hooks, event, result);
  std::vector<double> t_override;
  if (passes > 1) {
    const auto pace_start = Clock::now();
    const int64_t calls_at_start = event.calls_done;
    // The segments' weights as rendered, re-placed after each measuring pass.
    std::vector<PaceSegment> segments = plan.segments();
    for (int pass = 0; pass + 1 < passes; ++pass) {
      PaceMeter meter(total);
      SinkGroup measured({&meter});
      const InterpolationPlan pass_plan =
          pass == 0 ? std::move(plan) : make_plan(bundle, config, text, t_override, sources);
      renderer.render(pass_plan, measured);
      measured.finish([] {});
      t_override.assign(static_cast<size_t>(total), std::nan(""));
      for (PaceSegment& seg : segments) {
        std::vector<double> d;
        for (size_t k = 0; k + 1 < seg.frames.size(); ++k)
          d.push_back(meter.distance(seg.frames[k], seg.frames[k + 1]));
        seg.t = even_weights(seg.t, d);
        for (size_t k = 1; k + 1 < seg.frames.size(); ++k) t_override[static_cast<size_t>(seg.frames[k])] = seg.t[k];
      }
    }
    result.pace_extra_unet_calls = event.calls_done - calls_at_start;
    result.pace_weights = t_override;
    result.seconds_pacing = seconds_since(pace_start);
  }
  const InterpolationPlan final_plan =
      passes > 1 ? make_plan(bundle, config, text, t_override, sources) : std::move(plan);
  outputs.begin(result.width, result.height, static_cast<int>(total));
  renderer.render(final_plan, outputs);
  result.unet_calls = sampler.unet_calls();
  outputs.finish(stop_if_interrupted);
  event.kind = ProgressEvent::Kind::kDone;
  if (hooks.progress) hooks.progress(event);
  result.seconds_total = seconds_since(start);
  return result;
}

}  // namespace sdinterp
