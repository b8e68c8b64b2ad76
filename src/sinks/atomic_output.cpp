#include "sinks/atomic_output.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>
#include <vector>

#include "sdinterp/errors.h"

namespace sdinterp::sinks {
namespace fs = std::filesystem;

namespace {

std::string errno_text() { return std::strerror(errno); }

// "out/" and "out" name the same folder; fs::path keeps the empty file name of the former.
fs::path without_trailing_separator(const std::string& p) {
  fs::path path = fs::path(p).lexically_normal();
  if (path.filename().empty() && path.has_parent_path()) path = path.parent_path();
  return path;
}

void ensure_parent(const fs::path& path) {
  fs::path parent = path.parent_path();
  if (parent.empty()) return;
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) {
    throw IoError("cannot create folder " + parent.string() + ": " + ec.message() +
                  " (check the output path and permissions)");
  }
}

}  // namespace

void check_can_write(const std::string& path, bool overwrite) {
  std::error_code ec;
  if (!overwrite && fs::exists(path, ec)) {
    throw IoError("output " + path + " already exists; pass --overwrite to replace it");
  }
}

std::string lower_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

AtomicFile::AtomicFile(const std::string& path, bool overwrite) : path_(path), overwrite_(overwrite) {
  check_can_write(path, overwrite);
  fs::path target(path);
  if (fs::is_directory(target)) throw IoError("output " + path + " is a folder; give a file name");
  ensure_parent(target);
  fs::path temp = target.parent_path() / ("." + target.filename().string() + ".tmp-XXXXXX");
  std::string pattern = temp.string();
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  fd_ = mkstemp(name.data());
  if (fd_ < 0) {
    throw IoError("cannot create a temporary file beside " + path + ": " + errno_text() +
                  " (check that the folder is writable)");
  }
  temp_path_ = name.data();
}

AtomicFile::~AtomicFile() { discard(); }

void AtomicFile::close_fd(bool still_open) {
  if (fd_ >= 0 && still_open) ::close(fd_);
  fd_ = -1;
}

void AtomicFile::commit() {
  if (done_) return;
  // The bytes reach the disk before the name does: after a crash or power cut the output is whole
  // or absent. Checked, with close(): a full disk can surface only here.
  int fd = fd_ >= 0 ? fd_ : ::open(temp_path_.c_str(), O_RDONLY | O_CLOEXEC);
  int sync_error = fd < 0 ? errno : ::fsync(fd) != 0 ? errno : 0;
  if (fd >= 0 && ::close(fd) != 0 && sync_error == 0) sync_error = errno;
  fd_ = -1;
  if (sync_error != 0) {
    discard();
    throw IoError("cannot write " + path_ + ": " + std::strerror(sync_error) + " (check free disk space)");
  }
  // mkstemp creates 0600; an output is an ordinary file, readable like any other.
  mode_t mask = umask(0);
  umask(mask);
  ::chmod(temp_path_.c_str(), 0666 & ~mask);
  int rc = 0;
  if (overwrite_) {
    rc = ::rename(temp_path_.c_str(), path_.c_str());
  } else {
    // A hard link fails if the target appeared meanwhile, which rename() would silently replace.
    rc = ::link(temp_path_.c_str(), path_.c_str());
    if (rc != 0 && errno != EEXIST) {
      // Some file systems have no hard links: fall back to check-then-rename.
      std::error_code ec;
      if (fs::exists(path_, ec)) {
        errno = EEXIST;
      } else {
        rc = ::rename(temp_path_.c_str(), path_.c_str());
      }
    } else if (rc == 0) {
      ::unlink(temp_path_.c_str());
    }
  }
  if (rc != 0) {
    int saved = errno;
    discard();
    if (saved == EEXIST) {
      throw IoError("output " + path_ + " already exists; pass --overwrite to replace it");
    }
    throw IoError("cannot move the finished output to " + path_ + ": " + std::strerror(saved));
  }
  done_ = true;
}

void AtomicFile::discard() {
  if (done_) return;
  close_fd();
  if (!temp_path_.empty()) ::unlink(temp_path_.c_str());
  done_ = true;
}

AtomicDir::AtomicDir(const std::string& dir, bool overwrite) : overwrite_(overwrite) {
  fs::path target = without_trailing_separator(dir);
  dir_ = target.string();
  std::error_code ec;
  if (fs::exists(target, ec) && !fs::is_directory(target, ec)) {
    throw IoError("output " + dir_ + " exists and is not a folder; give a folder name");
  }
  ensure_parent(target);
  fs::path temp = target.parent_path() / ("." + target.filename().string() + ".tmp-XXXXXX");
  std::string pattern = temp.string();
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  if (mkdtemp(name.data()) == nullptr) {
    throw IoError("cannot create a temporary folder beside " + dir_ + ": " + errno_text() +
                  " (check that the folder is writable)");
  }
  temp_dir_ = name.data();
  // mkdtemp creates 0700; the frames folder is an ordinary folder, readable like any other.
  mode_t mask = umask(0);
  umask(mask);
  ::chmod(temp_dir_.c_str(), 0777 & ~mask);
}

AtomicDir::~AtomicDir() { discard(); }

void AtomicDir::commit(const std::string& stale_prefix) {
  if (done_) return;
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(temp_dir_, ec)) files.push_back(entry.path());
  if (ec) throw IoError("cannot list " + temp_dir_ + ": " + ec.message());

  if (!fs::exists(dir_, ec)) {
    // The whole folder appears at once.
    if (::rename(temp_dir_.c_str(), dir_.c_str()) != 0) {
      int saved = errno;
      discard();
      throw IoError("cannot move the frames to " + dir_ + ": " + std::strerror(saved));
    }
    done_ = true;
    return;
  }

  std::set<std::string> names;
  for (const auto& f : files) {
    names.insert(f.filename().string());
    if (!overwrite_ && fs::exists(fs::path(dir_) / f.filename(), ec)) {
      discard();
      throw IoError("output " + (fs::path(dir_) / f.filename()).string() +
                    " already exists; pass --overwrite to replace it");
    }
  }
  for (const auto& f : files) {
    fs::path to = fs::path(dir_) / f.filename();
    if (::rename(f.c_str(), to.c_str()) != 0) {
      int saved = errno;
      discard();
      throw IoError("cannot move " + f.string() + " to " + to.string() + ": " +
                    std::strerror(saved));
    }
  }
  if (overwrite_ && !stale_prefix.empty()) {
    for (const auto& entry : fs::directory_iterator(dir_, ec)) {
      std::string name = entry.path().filename().string();
      if (name.rfind(stale_prefix, 0) == 0 && names.count(name) == 0 && entry.is_regular_file()) {
        fs::remove(entry.path(), ec);
      }
    }
  }
  fs::remove_all(temp_dir_, ec);
  done_ = true;
}

void AtomicDir::discard() {
  if (done_) return;
  std::error_code ec;
  fs::remove_all(temp_dir_, ec);
  done_ = true;
}

}  // namespace sdinterp::sinks
