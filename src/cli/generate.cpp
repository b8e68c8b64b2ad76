// `sdinterp generate`: flags -> RunConfig -> pipeline -> files.
#include <iostream>
#include <memory>
#include <random>

#include "cli/commands.h"
#include "sdinterp/bundle.h"
#include "sdinterp/errors.h"
#include "sdinterp/pipeline.h"
#include "sdinterp/schedulers.h"

namespace sdinterp::cli {
namespace {

struct GenerateOptions {
  RunConfig config;
  std::string mode = "slerp-latent";
  std::string interp = "slerp";
  std::optional<uint64_t> seed;
  bool quiet = false;
};

uint64_t random_seed() {
  std::random_device rd;
  // 53 bits: exact as a JSON number and as a Python int.
  return ((static_cast<uint64_t>(rd()) << 32) | rd()) & ((uint64_t{1} << 53) - 1);
}

int run_generate(GenerateOptions& o) {
  RunConfig& c = o.config;
  c.mode = parse_walk_mode(o.mode);
  c.interp = parse_interp(o.interp);
  parse_scheduler_kind(c.scheduler);
  c.validate();
  c.seed = o.seed ? *o.seed : random_seed();
  if (!o.seed) std::cerr << "sdinterp: seed " << *c.seed << " (drawn at random; pass --seed to repeat)\n";

  Bundle bundle = Bundle::load(c.bundle_dir, c.device);
  c.validate(bundle.manifest());

  FrameSinkOptions sink_options;
  sink_options.fps = c.fps;
  sink_options.loop = c.loop;
  sink_options.overwrite = c.overwrite;
  std::vector<std::unique_ptr<FrameSink>> owned;
  if (!c.output.empty()) owned.push_back(make_file_sink(c.output, sink_options));
  if (!c.png_dir.empty()) owned.push_back(make_png_dir_sink(c.png_dir, sink_options));
  std::vector<FrameSink*> sinks;
  for (auto& s : owned) sinks.push_back(s.get());

  RunHooks hooks;
  hooks.warning = [](const std::string& w) { std::cerr << "sdinterp: warning: " << w << "\n"; };
  RunResult r = run_walk(bundle, c, sinks, hooks);

  std::string outputs;
  for (auto& s : owned) outputs += (outputs.empty() ? "" : ", ") + s->description();
  std::cout << "wrote " << outputs << ": " << r.frames << " frames " << r.width << "x" << r.height << ", seed " << r.seed
            << ", " << r.seconds_total << " s\n";
  return kExitOk;
}

}  // namespace

void add_generate_command(CLI::App& app, int& status) {
  auto o = std::make_shared<GenerateOptions>();
  RunConfig& c = o->config;
  CLI::App* sub = app.add_subcommand("generate", "Render a latent-space walk to a GIF and/or PNG frames");
  sub->add_option("--bundle", c.bundle_dir, "Model bundle folder (with model.json), e.g. models/tiny-sd")->required();
  sub->add_option("--mode", o->mode, "Walk: prompt-walk, slerp-latent, multi-prompt or circular")->capture_default_str();
  sub->add_option("--prompt", c.prompts, "Prompt text (repeat for multi-prompt)")->required();
  sub->add_option("--negative", c.negatives, "Negative prompt: once for all prompts, or once per prompt (default \"\")");
  sub->add_option("--seed", o->seed, "Seed of the latents (default: drawn at random and printed)");
  sub->add_option("--frames", c.frames, "Frames (multi-prompt: frames per pair of prompts)")->capture_default_str();
  sub->add_option("--steps", c.steps, "Denoising steps")->capture_default_str();
  sub->add_option("--guidance", c.guidance, "Classifier-free guidance scale (<= 1: off)")->capture_default_str();
  sub->add_option("--height", c.height, "Image height, a multiple of 8 (default: the bundle's native size)");
  sub->add_option("--width", c.width, "Image width, a multiple of 8 (default: the bundle's native size)");
  sub->add_option("--step-size", c.step_size, "prompt-walk: added to the text embeddings per frame")->capture_default_str();
  sub->add_option("--interp", o->interp, "Interpolation for slerp-latent and multi-prompt: slerp or lerp")->capture_default_str();
  sub->add_option("--scheduler", c.scheduler,
                  "Scheduler: lms, lms_karras, euler, euler_karras, ddim, pndm, dpmpp_2m, dpmpp_2m_karras")
      ->capture_default_str();
  sub->add_option("--batch", c.batch, "Frames per UNet call (0: automatic)")->capture_default_str();
  sub->add_option("--device", c.device, "auto (the bundle's device), cpu, cuda or cuda:N")->capture_default_str();
  sub->add_option("--png-dir", c.png_dir, "Write frames as DIR/frame_0000.png, ... (lossless)");
  sub->add_option("-o,--output", c.output, "Animation file (.gif)");
  sub->add_option("--fps", c.fps, "Frames per second of the animation")->capture_default_str();
  sub->add_option("--loop", c.loop, "Animation loop count (0: forever)")->capture_default_str();
  sub->add_flag("--overwrite", c.overwrite, "Replace existing outputs");
  sub->callback([o, &status] { status = run_generate(*o); });
}

}  // namespace sdinterp::cli
