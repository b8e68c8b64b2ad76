#include "cli/job_flags.h"

#include "sdinterp/job.h"

namespace sdinterp::cli {

JobFlags::JobFlags(CLI::App* sub, bool required) {
  RunConfig& c = values_;
  mode_ = walk_mode_name(c.mode);
  interp_ = interp_name(c.interp);
  auto& o = options_;
  o["bundle"] = sub->add_option("--bundle", c.bundle_dir, "Model bundle folder (with model.json), e.g. models/tiny-sd");
  o["mode"] = sub->add_option("--mode", mode_, "Walk: prompt-walk, slerp-latent, multi-prompt or circular")->capture_default_str();
  o["prompt"] = sub->add_option("--prompt", c.prompts, "Prompt text (repeat for multi-prompt)");
  o["negative"] = sub->add_option("--negative", c.negatives, "Negative prompt: once for all prompts, or once per prompt (default \"\")");
  o["seed"] = sub->add_option("--seed", seed_, "Seed of the latents (default: drawn at random and printed)");
  o["frames"] = sub->add_option("--frames", c.frames, "Frames (multi-prompt: frames per pair of prompts)")->capture_default_str();
  o["steps"] = sub->add_option("--steps", c.steps, "Denoising steps")->capture_default_str();
  o["guidance"] = sub->add_option("--guidance", c.guidance, "Classifier-free guidance scale (<= 1: off)")->capture_default_str();
  o["height"] = sub->add_option("--height", c.height, "Image height, a multiple of 8 (default: the bundle's native size)");
  o["width"] = sub->add_option("--width", c.width, "Image width, a multiple of 8 (default: the bundle's native size)");
  o["step-size"] = sub->add_option("--step-size", c.step_size, "prompt-walk: added to the text embeddings per frame")->capture_default_str();
  o["interp"] = sub->add_option("--interp", interp_, "slerp-latent and multi-prompt: slerp or lerp")->capture_default_str();
  o["scheduler"] = sub->add_option("--scheduler", c.scheduler,
                                   "lms, lms_karras, euler, euler_karras, ddim, pndm, dpmpp_2m, dpmpp_2m_karras")
                       ->capture_default_str();
  o["batch"] = sub->add_option("--batch", c.batch, "Frames per UNet call (0: automatic)")->capture_default_str();
  o["max-vram"] = sub->add_option("--max-vram", c.max_vram_gb, "CUDA: GiB of device memory the automatic --batch may use (0: no cap)")
                      ->capture_default_str();
  o["device"] = sub->add_option("--device", c.device, "auto (the bundle's device), cpu, cuda or cuda:N")->capture_default_str();
  o["unet-engine"] = sub->add_option("--unet-engine", c.unet_engine,
                                     "auto (the bundle's AOTInductor UNet where it fits, else TorchScript), torchscript or aoti")
                         ->capture_default_str();
  o["output"] = sub->add_option("-o,--output", c.output, "Animation file: .gif, .webp or .mp4; metadata goes to FILE.json");
  o["png-dir"] = sub->add_option("--png-dir", c.png_dir, "Write frames as DIR/frame_0000.png, ... (lossless)");
  o["fps"] = sub->add_option("--fps", c.fps, "Frames per second of the animation")->capture_default_str();
  o["loop"] = sub->add_option("--loop", c.loop, "Times the animation plays (0: forever)")->capture_default_str();
  o["boomerang"] = sub->add_flag("--boomerang", c.boomerang, "Play forward then back (end frames not repeated)");
  o["dither"] = sub->add_option("--dither", c.dither, "GIF: diffusion, ordered or none")->capture_default_str();
  o["lossless"] = sub->add_flag("--lossless", c.lossless, "WebP: lossless frames");
  o["quality"] = sub->add_option("--quality", c.quality, "WebP: lossy quality 0..100")->capture_default_str();
  o["crf"] = sub->add_option("--crf", c.crf, "MP4: H.264 constant rate factor 0..51, lower is better")->capture_default_str();
  o["overwrite"] = sub->add_flag("--overwrite", c.overwrite, "Replace existing outputs");
  if (required) {
    o["bundle"]->required();
    o["prompt"]->required();
  }
}

nlohmann::json JobFlags::given() const {
  // Values as a job writes them; the fields CLI11 keeps as text or apart (mode, interp, seed,
  // overwrite) are taken from the flags so that apply_job checks and reports them.
  const nlohmann::json all = job_to_json(values_);
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, option] : options_) {
    if (option->count() == 0) continue;
    if (key == "mode") j[key] = mode_;
    else if (key == "interp") j[key] = interp_;
    else if (key == "seed") j[key] = seed_;
    else if (key == "overwrite") j[key] = values_.overwrite;
    else j[key] = all.at(key);
  }
  return j;
}

void add_ui_flags(CLI::App* sub, UiOptions& ui) {
  sub->add_flag("-q,--quiet", ui.quiet, "Print only the result line (and errors)");
  sub->add_option("--progress", ui.progress, "Progress: auto (a bar on a terminal), bar, json (one line per event), none")
      ->check(CLI::IsMember({"auto", "bar", "json", "none"}))
      ->capture_default_str();
}

}  // namespace sdinterp::cli
