#include "cli/job_flags.h"

#include "sdinterp/errors.h"
#include "sdinterp/job.h"
#include "sdinterp/number_text.h"

namespace sdinterp::cli {

JobFlags::JobFlags(CLI::App* sub, bool required) {
  RunConfig& c = values_;
  mode_ = walk_mode_name(c.mode);
  interp_ = interp_name(c.interp);
  ease_ = ease_name(c.ease);
  pace_ = pace_name(c.pace);
  fit_ = fit_name(c.fit);
  inversion_ = inversion_name(c.inversion);
  auto& o = options_;
  // Numeric flags are taken as text and read by flag_value, as a job file's numbers are read:
  // one reader, one set of messages (with the range of numeric_options()) for both.
  const nlohmann::json defaults = job_to_json(c);
  auto number = [&](const std::string& key, const std::string& help) {
    CLI::Option* option =
        sub->add_option("--" + key, numbers_[key], help)->type_name(numeric_option(key).integer ? "INT" : "NUMBER");
    if (defaults.at(key).is_number()) option->default_str(number_text(defaults.at(key).get<double>()));
    o[key] = option;
  };
  auto ranged = [](const std::string& key, const std::string& what) {
    return what + ": " + range_text(numeric_option(key));
  };
  o["bundle"] = sub->add_option("--bundle", c.bundle_dir, "Model bundle folder (with model.json), e.g. models/tiny-sd");
  o["mode"] = sub->add_option("--mode", mode_,
                              "Walk: prompt-walk, slerp-latent, multi-prompt, circular, timeline or image-morph")
                  ->capture_default_str();
  o["prompt"] = sub->add_option("--prompt", c.prompts, "Prompt text (repeat for multi-prompt)");
  o["negative"] = sub->add_option("--negative", c.negatives,
                                  "Negative prompt: once for all prompts, or once per prompt (default \"\")");
  o["seed"] = sub->add_option("--seed", numbers_["seed"],
                              std::string("Seed of the latents, 0 to ") + kMaxSeedText +
                                  " (default: drawn at random and printed)")
                  ->type_name("INT");
  number("frames", ranged("frames", "Frames (multi-prompt: frames per pair of prompts)"));
  number("steps", ranged("steps", "Denoising steps"));
  number("guidance", ranged("guidance", "Classifier-free guidance scale"));
  number("height", ranged("height", "Image height, a multiple of 8"));
  number("width", ranged("width", "Image width, a multiple of 8"));
  number("step-size", ranged("step-size", "prompt-walk: added to the text embeddings per frame"));
  o["interp"] =
      sub->add_option("--interp", interp_, "slerp-latent and multi-prompt: slerp or lerp")->capture_default_str();
  o["scheduler"] = sub->add_option("--scheduler", c.scheduler,
                                   "lms, lms_karras, euler, euler_karras, ddim, pndm, dpmpp_2m, dpmpp_2m_karras")
                       ->capture_default_str();
  o["keyframes"] = sub->add_option("--keyframe", keyframes_,
                                   "timeline: a keyframe, FRAME[,seed=N][,ease=NAME][,negative=TEXT]:PROMPT "
                                   "(e.g. \"12,ease=sine:a white owl\") or a JSON object; repeat in order")
                       ->type_name("KEYFRAME");
  o["cycle"] = sub->add_flag("--cycle", c.cycle,
                             "timeline: close the walk back to the first keyframe at index --frames (the period), "
                             "a loop without a seam");
  o["ease"] =
      sub->add_option("--ease", ease_, "timeline: the keyframes' default ease: linear, sine, cubic, in, out or hold")
          ->capture_default_str();
  o["pace"] = sub->add_option("--pace", pace_,
                              "uniform (evenly spaced weights, the notebook's) or even (frames equally far apart: "
                              "measured on a rendered pass, then re-placed; about twice the time)")
                  ->capture_default_str();
  number("pace-passes", ranged("pace-passes", "--pace even: measuring passes"));
  o["image"] = sub->add_option("--image", c.images,
                               "image-morph: an image to morph through, PNG or JPEG (alpha composited on white); "
                               "repeat, two or more in order")
                   ->type_name("FILE");
  o["fit"] = sub->add_option("--fit", fit_,
                             "image-morph: crop (scale to cover, centre crop), pad (scale to fit, centred on white) or "
                             "stretch")
                 ->capture_default_str();
  number("strength", ranged("strength", "image-morph: how far from each image the walk starts (img2img strength)"));
  o["inversion"] = sub->add_option("--inversion", inversion_,
                                   "image-morph: noise (the scheduler noises each image, as img2img) or ddim "
                                   "(deterministic DDIM inversion; with --scheduler ddim)")
                       ->capture_default_str();
  o["adain"] = sub->add_flag("--adain", c.adain,
                             "image-morph: renormalise each in-between latent to the interpolated channel means and "
                             "standard deviations of its two images (AdaIN)");
  number("batch", ranged("batch", "Frames per UNet call"));
  number("max-vram", ranged("max-vram", "CUDA: device memory the automatic --batch may use"));
  o["device"] =
      sub->add_option("--device", c.device, "auto (the bundle's device), cpu, cuda or cuda:N")->capture_default_str();
  o["unet-engine"] =
      sub->add_option("--unet-engine", c.unet_engine,
                      "auto (the bundle's AOTInductor UNet where it fits, else TorchScript), torchscript or aoti")
          ->capture_default_str();
  o["output"] =
      sub->add_option("-o,--output", c.output, "Animation file: .gif, .webp or .mp4; metadata goes to FILE.json");
  o["png-dir"] = sub->add_option("--png-dir", c.png_dir, "Write frames as DIR/frame_0000.png, ... (lossless)");
  number("fps", ranged("fps", "Frames per second of the animation (GIF: up to 50, MP4: up to 240)"));
  number("loop", ranged("loop", "Times the animation plays (WebP: up to 65535)"));
  o["boomerang"] = sub->add_flag("--boomerang", c.boomerang, "Play forward then back (end frames not repeated)");
  o["seamless-loop"] = sub->add_flag("--seamless-loop", c.seamless_loop,
                                     "Leave out the last frame, which repeats the first (circular; multi-prompt "
                                     "ending on its first prompt), so a loop shows no frame twice");
  o["dither"] = sub->add_option("--dither", c.dither, "GIF: diffusion, ordered or none")->capture_default_str();
  o["lossless"] = sub->add_flag("--lossless", c.lossless, "WebP: lossless frames");
  number("quality", ranged("quality", "WebP: lossy quality"));
  number("crf", ranged("crf", "MP4: H.264 constant rate factor"));
  o["overwrite"] = sub->add_flag("--overwrite", c.overwrite, "Replace existing outputs");
  // The prompts a mode needs (none for a timeline, whose keyframes carry them) are checked with
  // the rest of the job (RunConfig::problems).
  if (required) o["bundle"]->required();
}

nlohmann::json JobFlags::given() const {
  // Values as a job writes them; the fields CLI11 keeps as text or apart (mode, interp, numbers,
  // overwrite) are taken from the flags so that apply_job checks and reports them.
  const nlohmann::json all = job_to_json(values_);
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [key, option] : options_) {
    if (option->count() == 0) continue;
    if (key == "mode")
      j[key] = mode_;
    else if (key == "interp")
      j[key] = interp_;
    else if (key == "overwrite")
      j[key] = values_.overwrite;
    else if (key == "ease")
      j[key] = ease_;
    else if (key == "pace")
      j[key] = pace_;
    else if (key == "fit")
      j[key] = fit_;
    else if (key == "inversion")
      j[key] = inversion_;
    else if (key == "keyframes") {
      j[key] = nlohmann::json::array();
      for (const std::string& text : keyframes_) j[key].push_back(keyframe_flag_value(text));
    } else if (auto text = numbers_.find(key); text != numbers_.end())
      j[key] = flag_value(key, text->second);
    else
      j[key] = all.at(key);
  }
  return j;
}

void check_ui(const UiOptions& ui) {
  for (const char* known : {"auto", "bar", "json", "none"}) {
    if (ui.progress == known) return;
  }
  throw ConfigError("unknown --progress \"" + ui.progress + "\"; choose one of: auto, bar, json, none");
}

void add_ui_flags(CLI::App* sub, UiOptions& ui) {
  sub->add_flag("-q,--quiet", ui.quiet, "Print only the result line (and errors)");
  sub->add_option("--progress", ui.progress,
                  "Progress: auto (a bar on a terminal), bar, json (one line per event), none")
      ->capture_default_str();
  sub->add_flag("--verbose", ui.verbose,
                "When the model fails, print LibTorch's whole message (TorchScript traceback included) before the "
                "error line; SDINTERP_VERBOSE=1 does the same");
}

}  // namespace sdinterp::cli
