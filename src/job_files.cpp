#include "sdinterp/job_files.h"

#include <algorithm>
#include <climits>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "sdinterp/errors.h"
#include "sdinterp/frame_sink.h"
#include "sdinterp/job.h"

namespace sdinterp {

std::string path_key(const std::string& path) {
  namespace fs = std::filesystem;
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  std::error_code ec;
  // Absolute first: weakly_canonical leaves a relative path none of whose parts exist relative
  // ("a.gif" and "./a.gif" would differ while a.gif is not there yet).
  const fs::path absolute = fs::absolute(p, ec);
  if (ec) return fs::path(p).lexically_normal().string();
  const fs::path canonical = fs::weakly_canonical(absolute, ec);
  return (ec ? absolute.lexically_normal() : canonical).string();
}

std::string metadata_path(const RunConfig& c) {
  if (!c.output.empty()) return c.output + ".json";
  std::string dir = c.png_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir + ".json";
}

std::string error_record_path(const RunConfig& c) {
  std::string meta = metadata_path(c);
  return meta.substr(0, meta.size() - 5) + ".error.json";
}

std::string publish_marker_path(const std::string& meta) {
  const std::filesystem::path m(meta);
  return (m.parent_path() / ("." + m.filename().string() + ".publishing")).string();
}

bool job_already_done(const RunConfig& config, const nlohmann::json& explicit_keys) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // A run of the job was killed while publishing: not done, whatever is visible.
  if (fs::exists(publish_marker_path(metadata_path(config)), ec)) return false;
  if (!config.output.empty() && !fs::exists(config.output, ec)) return false;
  if (!config.png_dir.empty()) {
    // The first frame's name, as wide as the job's frame count made it (frame_0000.png, frame_00000.png, ...).
    bool first_frame = false;
    for (int digits = png_frame_digits(1); digits <= png_frame_digits(INT_MAX) && !first_frame; ++digits) {
      first_frame = fs::exists(fs::path(config.png_dir) / png_frame_name(0, digits), ec);
    }
    if (!first_frame) return false;
  }
  const std::string meta = metadata_path(config);
  std::ifstream in(meta);
  if (!in) return false;
  std::stringstream text;
  text << in.rdbuf();
  RunConfig recorded;
  try {
    recorded = parse_job(text.str(), meta);
    resolve_metadata_paths(recorded, meta);
  } catch (const ConfigError&) {
    return false;  // unreadable metadata: the job is not known to be done
  }
  const nlohmann::json wanted = job_to_json(config), got = job_to_json(recorded);
  const auto& path_keys = job_path_keys();
  for (const auto& [key, value] : explicit_keys.items()) {
    if (key == "overwrite" || key[0] == '_' || key == "sdinterp") continue;
    if (std::find(path_keys.begin(), path_keys.end(), key) != path_keys.end()) {
      // One path, or a list of them (image): the same files, however written.
      auto paths = [](const nlohmann::json& v) { return v.is_array() ? v : nlohmann::json::array({v}); };
      const nlohmann::json a_paths = paths(wanted.at(key)), b_paths = paths(got.at(key));
      if (a_paths.size() != b_paths.size()) return false;
      for (size_t i = 0; i < a_paths.size(); ++i) {
        std::string a, b;
        text_from_json(a_paths[i], a);
        text_from_json(b_paths[i], b);
        if (a.empty() != b.empty() || path_key(a) != path_key(b)) return false;
      }
      continue;
    }
    if (!wanted.contains(key) || wanted.at(key) != got.at(key)) return false;
  }
  return true;
}

}  // namespace sdinterp
