#include "sdinterp/config.h"

#include <cmath>

#include "sdinterp/errors.h"
#include "sdinterp/manifest.h"

namespace sdinterp {
namespace {

const std::pair<WalkMode, const char*> kModes[] = {
    {WalkMode::kPromptWalk, "prompt-walk"},
    {WalkMode::kSlerpLatent, "slerp-latent"},
    {WalkMode::kMultiPrompt, "multi-prompt"},
    {WalkMode::kCircular, "circular"},
};

const std::pair<InterpKind, const char*> kInterps[] = {
    {InterpKind::kSlerp, "slerp"},
    {InterpKind::kLerp, "lerp"},
};

template <typename Enum, size_t N>
Enum parse_named(const std::pair<Enum, const char*> (&table)[N], const std::string& name, const char* option) {
  std::string list;
  for (const auto& [value, text] : table) {
    if (name == text) return value;
    list += list.empty() ? text : std::string(", ") + text;
  }
  throw ConfigError(std::string("unknown ") + option + " \"" + name + "\"; choose one of: " + list);
}

template <typename Enum, size_t N>
std::string name_of(const std::pair<Enum, const char*> (&table)[N], Enum value) {
  for (const auto& [v, text] : table) {
    if (v == value) return text;
  }
  return "?";
}

void throw_if_any(const std::vector<std::string>& problems) {
  if (problems.empty()) return;
  std::string line;
  for (const auto& p : problems) line += (line.empty() ? "" : "; ") + p;
  throw ConfigError(line);
}

}  // namespace

std::string walk_mode_name(WalkMode mode) { return name_of(kModes, mode); }
WalkMode parse_walk_mode(const std::string& name) { return parse_named(kModes, name, "--mode"); }
std::string interp_name(InterpKind kind) { return name_of(kInterps, kind); }
InterpKind parse_interp(const std::string& name) { return parse_named(kInterps, name, "--interp"); }

int RunConfig::total_frames() const {
  if (mode == WalkMode::kMultiPrompt) return frames * std::max<int>(0, static_cast<int>(prompts.size()) - 1);
  return frames;
}

std::vector<std::string> RunConfig::problems() const {
  std::vector<std::string> out;
  if (bundle_dir.empty()) out.push_back("--bundle is required (a folder with model.json, e.g. models/tiny-sd)");
  const int n = static_cast<int>(prompts.size());
  const std::string mode_name = walk_mode_name(mode);
  if (mode == WalkMode::kMultiPrompt) {
    if (n < 2) out.push_back("--mode multi-prompt needs at least 2 --prompt (got " + std::to_string(n) + ")");
    if (!negatives.empty() && negatives.size() != 1 && static_cast<int>(negatives.size()) != n) {
      out.push_back("--negative given " + std::to_string(negatives.size()) + " times; give it once (for all prompts) or once per --prompt (" +
                    std::to_string(n) + ")");
    }
  } else {
    if (n != 1) out.push_back("--mode " + mode_name + " needs exactly 1 --prompt (got " + std::to_string(n) + ")");
    if (negatives.size() > 1) {
      out.push_back("--mode " + mode_name + " takes at most 1 --negative (got " + std::to_string(negatives.size()) + ")");
    }
  }
  if (frames < 2) out.push_back("--frames must be at least 2 (got " + std::to_string(frames) + ")");
  if (frames > 100000) out.push_back("--frames must be at most 100000");
  if (steps < 1 || steps > 1000) out.push_back("--steps must be between 1 and 1000 (got " + std::to_string(steps) + ")");
  if (!std::isfinite(guidance) || guidance < 0 || guidance > 100) out.push_back("--guidance must be between 0 and 100");
  if (height < 0 || width < 0) out.push_back("--height and --width must be positive");
  if (!std::isfinite(step_size)) out.push_back("--step-size must be a finite number");
  if (batch < 0) out.push_back("--batch must be positive (or 0 for automatic)");
  if (!(max_vram_gb >= 0) || max_vram_gb > 1e6) out.push_back("--max-vram must be a positive number of GiB (or 0 for no cap)");
  if (!(fps > 0 && fps <= 100)) out.push_back("--fps must be above 0 and at most 100");
  if (loop < 0 || loop > 65535) out.push_back("--loop must be between 0 (forever) and 65535");
  if (unet_engine != "auto" && unet_engine != "torchscript" && unet_engine != "aoti") {
    out.push_back("unknown --unet-engine \"" + unet_engine + "\"; choose one of: auto, torchscript, aoti");
  }
  if (dither != "diffusion" && dither != "ordered" && dither != "none") {
    out.push_back("unknown --dither \"" + dither + "\"; choose one of: diffusion, ordered, none");
  }
  if (!(quality >= 0 && quality <= 100)) out.push_back("--quality must be between 0 and 100");
  if (crf < 0 || crf > 51) out.push_back("--crf must be between 0 and 51");
  if (png_dir.empty() && output.empty()) out.push_back("nothing to write: give -o FILE.gif and/or --png-dir DIR");
  return out;
}

std::vector<std::string> RunConfig::problems_with(const Manifest& manifest) const {
  std::vector<std::string> out;
  const int factor = manifest.vae.scale_factor;
  // The UNet's own limit, for bundles traced before the exporter took every size.
  const int step = factor * std::max(1, manifest.unet.latent_multiple);
  for (const auto& [value, name] : {std::pair<int, const char*>{height, "--height"}, {width, "--width"}}) {
    if (value == 0) continue;
    if (value % factor != 0 || value < factor) {
      out.push_back(std::string(name) + " " + std::to_string(value) + " is not a multiple of " + std::to_string(factor) +
                    " (the bundle's VAE scale factor); try " + std::to_string(std::max(factor, value / factor * factor)));
    } else if (value % step != 0) {
      const int below = value / step * step;
      out.push_back(std::string(name) + " " + std::to_string(value) + ": this bundle's UNet takes sizes in steps of " +
                    std::to_string(step) + " px (it was traced for them); try " +
                    (below > 0 ? std::to_string(below) + " or " : std::string()) + std::to_string(below + step) +
                    ", or re-export the bundle with scripts/export_bundle.py, whose bundles take every multiple of " +
                    std::to_string(factor));
    }
  }
  return out;
}

void RunConfig::validate() const { throw_if_any(problems()); }

void RunConfig::validate(const Manifest& manifest) const {
  auto all = problems();
  auto more = problems_with(manifest);
  all.insert(all.end(), more.begin(), more.end());
  throw_if_any(all);
}

}  // namespace sdinterp
