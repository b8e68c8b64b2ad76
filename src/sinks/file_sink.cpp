// make_file_sink: the output's extension picks the format.
#include <algorithm>
#include <filesystem>
#include <memory>
#include <string>

#include "io/atomic_output.h"
#include "sdinterp/errors.h"
#include "sdinterp/frame_sink.h"
#include "sdinterp/names.h"
#include "sdinterp/number_text.h"
#include "sinks/sink_common.h"
#include "sinks/sinks.h"

namespace sdinterp {

namespace {
const std::vector<std::string>& file_extensions() {
  static const std::vector<std::string> extensions = {".gif", ".webp", ".mp4"};
  return extensions;
}
}  // namespace

std::string supported_file_extensions() {
  std::string text;
  for (const std::string& ext : file_extensions()) text += (text.empty() ? "" : ", ") + ext;
  return text;
}

bool known_file_extension(const std::string& path) {
  const std::string ext = io::lower_extension(path);
  return std::find(file_extensions().begin(), file_extensions().end(), ext) != file_extensions().end();
}

std::string unknown_format_message(const std::string& path, const std::string& folder_form) {
  std::string name = std::filesystem::path(path).filename().string();
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (std::find(file_extensions().begin(), file_extensions().end(), name) != file_extensions().end()) {
    return "output '" + path + "' is an extension with no name before it; name the file, e.g. walk" + name;
  }
  return "cannot tell the output format of '" + path + "' from its extension; use " + supported_file_extensions() +
         folder_form;
}

std::string fps_limits_text() {
  std::string text;
  for (const sinks::FpsLimits* limits : sinks::fps_limits()) {
    text += (text.empty() ? "" : ", ") + std::string(limits->format) + ": up to " + number_text(limits->max_fps);
  }
  return text;
}

namespace {

// The options that only some outputs read (every output reads --boomerang and --overwrite).
struct FormatOption {
  const char* key;
  std::vector<std::string> extensions;  // the file outputs that read it; a frames folder reads none
};
const std::vector<FormatOption>& format_options() {
  static const std::vector<FormatOption> table = {
      {"fps", {".gif", ".webp", ".mp4"}},
      {"loop", {".gif", ".webp"}},
      {"dither", {".gif"}},
      {"lossless", {".webp"}},
      {"quality", {".webp"}},
      {"crf", {".mp4"}},
  };
  return table;
}

}  // namespace

std::vector<std::string> format_option_keys() {
  std::vector<std::string> keys;
  for (const FormatOption& option : format_options()) keys.push_back(option.key);
  return keys;
}

std::vector<std::string> ignored_format_options(const std::vector<std::string>& given_keys,
                                                const std::string& output_file, const std::string& png_dir) {
  const std::string ext = output_file.empty() ? "" : io::lower_extension(output_file);
  std::vector<std::string> warnings;
  for (const FormatOption& option : format_options()) {
    if (std::find(given_keys.begin(), given_keys.end(), option.key) == given_keys.end()) continue;
    if (std::find(option.extensions.begin(), option.extensions.end(), ext) != option.extensions.end()) continue;
    std::string formats;
    for (const std::string& e : option.extensions) formats += (formats.empty() ? "" : ", ") + e;
    const std::string ignoring =
        !output_file.empty() ? output_file + " ignores it" : "the PNG frames in " + png_dir + " ignore it";
    warnings.push_back("--" + std::string(option.key) + " applies to " + formats +
                       (option.extensions.size() == 1 ? " only" : "") + "; " + ignoring);
  }
  return warnings;
}

namespace {
const NameTable<Dither> kDithers("--dither", {{Dither::kDiffusion, "diffusion"},
                                              {Dither::kOrdered, "ordered"},
                                              {Dither::kNone, "none"}});
}  // namespace

Dither parse_dither(const std::string& name) { return kDithers.parse(name); }
std::string dither_name(Dither dither) { return kDithers.name(dither); }

std::unique_ptr<FrameSink> make_file_sink(const std::string& path, const FrameSinkOptions& options) {
  std::string ext = io::lower_extension(path);
  std::unique_ptr<FrameSink> sink;
  if (ext == ".gif") {
    sink = sinks::make_gif_sink(path, options);
  } else if (ext == ".webp") {
    sink = sinks::make_background_sink(sinks::make_codec_sink("webp", path, options));
  } else if (ext == ".mp4") {
    sink = sinks::make_background_sink(sinks::make_codec_sink("mp4", path, options));
  } else {
    throw ConfigError(unknown_format_message(path));
  }
  if (options.boomerang) sink = sinks::make_boomerang_sink(std::move(sink), path);
  return sink;
}

}  // namespace sdinterp
