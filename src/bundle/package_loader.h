// Opening AOTInductor packages (a bundle's unet.pt2, vae_decoder.pt2) through LibTorch's package
// loader, safely from several threads at once.
//
// The loader (aoti_package/model_package_loader.cpp, PyTorch 2.11) reads a package's metadata file
// by parsing it into one static JSON object, both in load_metadata_from_package and in its
// constructor: two packages opened at once corrupt that object (a crash in free, or a parse that
// never ends). These two functions are the only way sdinterp calls either; they take one lock.
#pragma once

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <map>
#include <memory>
#include <string>

namespace sdinterp {

using PackageLoader = torch::inductor::AOTIModelPackageLoader;

// The package's metadata (AOTI_DEVICE_KEY, AOTI_CPU_ISA, ...) without loading its code. Throws
// what the loader throws for a file that is not a package.
std::map<std::string, std::string> read_package_metadata(const std::string& path);

// The package with its code loaded for `device_index` (-1: the CPU), its constants left to the
// caller (user-managed). Throws what the loader throws.
std::unique_ptr<PackageLoader> open_package(const std::string& path, c10::DeviceIndex device_index);

}  // namespace sdinterp
