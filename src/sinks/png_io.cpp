#include "sinks/png_io.h"

#include <cstring>

#include "sdinterp/errors.h"

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
  if (stbi_write_png(path.c_str(), frame.width, frame.height, 3, frame.rgb.data(),
                     frame.width * 3) == 0) {
    throw IoError("cannot write " + path + " (check free space and permissions)");
  }
}

}  // namespace sdinterp::sinks
