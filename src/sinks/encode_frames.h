// The work of `sdinterp encode`, kept in the sinks library so it is usable (and testable)
// without the model: image files on disk in, one animation out.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "sdinterp/frame_sink.h"

namespace sdinterp::sinks {

// Encodes `frames` (image files, in display order) into `output`: a .gif/.webp/.mp4 file, or a
// folder of PNG frames when `output` ends in '/' or is an existing folder. All frame sizes are
// checked before anything is written (ConfigError naming the first odd frame); on any error
// nothing is left behind. `stop_requested`, if given, is asked between frames: true throws
// InterruptedError (after removing the temporary). Returns the sink's description of what was
// written.
std::string encode_frames(const std::vector<std::string>& frames, const std::string& output,
                          const FrameSinkOptions& options, const std::function<bool()>& stop_requested = {});

}  // namespace sdinterp::sinks
