#include "cli/job_files.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "sdinterp/errors.h"
#include "sdinterp/job.h"

namespace sdinterp::cli {

std::string metadata_path(const RunConfig& c) {
  if (!c.output.empty()) return c.output + ".json";
  std::string dir = c.png_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir + ".json";
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
  if (!config.png_dir.empty() && !fs::exists(fs::path(config.png_dir) / "frame_0000.png", ec)) return false;
  const std::string meta = metadata_path(config);
  std::ifstream in(meta);
  if (!in) return false;
  std::stringstream text;
  text << in.rdbuf();
  RunConfig recorded;
  try {
    recorded = parse_job(text.str(), meta);
  } catch (const ConfigError&) {
    return false;  // unreadable metadata: the job is not known to be done
  }
  const nlohmann::json wanted = job_to_json(config), got = job_to_json(recorded);
  for (const auto& [key, value] : explicit_keys.items()) {
    if (key == "overwrite") continue;
    if (wanted.at(key) != got.at(key)) return false;
  }
  return true;
}

}  // namespace sdinterp::cli
