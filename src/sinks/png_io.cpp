#include "sinks/png_io.h"

#include <cstring>

#include "sdinterp/errors.h"
#include "sinks/sink_common.h"

// stb is third-party code: its own warnings are not ours to fix.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wpedantic"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STBI_NO_GIF  // frames are stills; GIF input would only read its first frame silently
#include <stb_image.h>
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace sdinterp::sinks {

void read_image_size(const std::string& path, int& width, int& height) {
  int channels = 0;
  if (stbi_info(path.c_str(), &width, &height, &channels) == 0) {
    throw IoError("cannot read image " + path + ": " + stbi_failure_reason() +
                  " (give PNG frames)");
  }
}

Frame read_image_rgb(const std::string& path) {
  int width = 0;
  int height = 0;
  int channels = 0;
  unsigned char* pixels = stbi_load(path.c_str(), &width, &height, &channels, 3);
  if (pixels == nullptr) {
    throw IoError("cannot read image " + path + ": " + stbi_failure_reason() +
                  " (give PNG frames)");
  }
  Frame frame;
  frame.width = width;
  frame.height = height;
  frame.rgb.assign(pixels, pixels + static_cast<size_t>(width) * height * 3);
  stbi_image_free(pixels);
  return frame;
}

void write_png(const std::string& path, const Frame& frame) {
  // Encoded in memory and written by write_file: stb's own file writer does not check fwrite, so a
  // full disk left truncated or empty frames behind a success.
  int size = 0;
  unsigned char* png = stbi_write_png_to_mem(frame.rgb.data(), frame.width * 3, frame.width, frame.height, 3, &size);
  if (png == nullptr) throw IoError("cannot encode " + path + " as PNG (out of memory?)");
  try {
    write_file(path, png, static_cast<size_t>(size));
  } catch (...) {
    STBIW_FREE(png);
    throw;
  }
  STBIW_FREE(png);
}

}  // namespace sdinterp::sinks
