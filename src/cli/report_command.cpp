// `sdinterp report FRAME.png... [--json] [--cycle]`: the smoothness report (sdinterp/smoothness.h)
// of any frame sequence on disk, without a model.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "io/png_io.h"
#include "sdinterp/errors.h"
#include "sdinterp/number_text.h"
#include "sdinterp/smoothness.h"

namespace sdinterp::cli {
namespace {

struct ReportOptions {
  std::vector<std::string> frames;
  bool json = false;
  bool cycle = false;
};

int run_report(const ReportOptions& given) {
  ReportOptions o = given;
  o.frames = io::frame_files(given.frames);
  if (o.frames.size() < 2) {
    // One file that is no frame (an animation, metadata) is said to be so first.
    io::read_image_rgb(o.frames[0]);
    throw ConfigError("report needs at least 2 frames (got 1, " + o.frames[0] + ")");
  }
  SmoothnessMeter meter(o.cycle);
  int width = 0, height = 0;
  for (const std::string& path : o.frames) {
    const Frame frame = io::read_image_rgb(path);
    if (width == 0) {
      width = frame.width;
      height = frame.height;
    } else if (frame.width != width || frame.height != height) {
      throw ConfigError(path + " is " + std::to_string(frame.width) + "x" + std::to_string(frame.height) + " but " +
                        o.frames[0] + " is " + std::to_string(width) + "x" + std::to_string(height) +
                        "; all frames must have the same size");
    }
    meter.add(frame);
  }
  const nlohmann::json r = meter.report();
  if (o.json) {
    std::cout << r.dump() << std::endl;
    return 0;
  }
  auto number = [](const nlohmann::json& v, const char* format) {
    if (v.is_null()) return std::string("n/a");
    char buf[64];
    std::snprintf(buf, sizeof buf, format, v.get<double>());
    return std::string(buf);
  };
  std::cout << o.frames.size() << " frames, " << count_text(static_cast<int64_t>(r["distances"].size()), "step")
            << (o.cycle ? " (a cycle)" : "") << ": mean " << number(r["mean"], "%.3f") << ", max "
            << number(r["max"], "%.3f") << ", istd " << number(r["istd"], "%.3f") << ", cv " << number(r["cv"], "%.4f")
            << ", max/mean " << number(r["max_over_mean"], "%.3f") << ", smoothness " << number(r["smoothness"], "%.4f")
            << std::endl;
  return 0;
}

}  // namespace

void add_report_command(CLI::App& app, int& status) {
  auto opts = std::make_shared<ReportOptions>();
  CLI::App* sub = app.add_subcommand(
      "report", "How evenly a frame sequence moves (the smoothness report of run metadata), without a model");
  sub->add_option("frames", opts->frames, kFramesHelp)->required();
  sub->add_flag("--json", opts->json, "Print the report as one JSON object (the metadata's \"smoothness\")");
  sub->add_flag("--cycle", opts->cycle, "The frames loop: count the step from the last frame back to the first");
  sub->callback([opts, &status] { status = run_report(*opts); });
}

}  // namespace sdinterp::cli
