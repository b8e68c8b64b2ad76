#include "io/atomic_output.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>
#include <vector>

#include "sdinterp/errors.h"

namespace sdinterp::io {

namespace {

// Moves `size` bytes through `step` (write/pwrite or pread at an offset), retrying short transfers
// and EINTR; on a failure (0 bytes moved: a full disk, the end of the file) returns its errno.
template <typename Step>
int transfer_all(size_t size, Step step) {
  size_t done = 0;
  while (done < size) {
    const ssize_t n = step(done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return ENOSPC;
    done += static_cast<size_t>(n);
  }
  return 0;
}

}  // namespace

void write_all(int fd, const void* data, size_t size, const std::string& path) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  const int error = transfer_all(size, [&](size_t done) { return ::write(fd, bytes + done, size - done); });
  if (error != 0) throw IoError("cannot write " + path + ": " + std::strerror(error) + " (check free disk space)");
}

void write_all_at(int fd, const void* data, size_t size, off_t offset, const std::string& failure) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  const int error = transfer_all(
      size, [&](size_t done) { return ::pwrite(fd, bytes + done, size - done, offset + static_cast<off_t>(done)); });
  if (error != 0) throw IoError(failure + ": " + std::strerror(error) + " (check free disk space)");
}

void read_all_at(int fd, void* data, size_t size, off_t offset, const std::string& failure) {
  auto* bytes = static_cast<uint8_t*>(data);
  const int error = transfer_all(
      size, [&](size_t done) { return ::pread(fd, bytes + done, size - done, offset + static_cast<off_t>(done)); });
  if (error != 0) throw IoError(failure);
}

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), path);
  std::string text;
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      throw std::system_error(error, std::generic_category(), path);
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

void write_file(const std::string& path, const void* data, size_t size) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) throw IoError("cannot write " + path + ": " + std::strerror(errno));
  try {
    write_all(fd, data, size, path);
    if (::fsync(fd) != 0)
      throw IoError("cannot write " + path + ": " + std::strerror(errno) + " (check free disk space)");
  } catch (...) {
    ::close(fd);
    throw;
  }
  if (::close(fd) != 0)
    throw IoError("cannot write " + path + ": " + std::strerror(errno) + " (check free disk space)");
}

namespace fs = std::filesystem;

namespace {

std::string errno_text() { return std::strerror(errno); }

// An output's temporary is ".NAME" + kOutputInfix + the characters mkstemp/mkdtemp put in place of
// kRandomPart: AtomicFile and AtomicDir make them, remove_stale_temporaries recognises them.
constexpr char kOutputInfix[] = ".tmp-";
constexpr char kRandomPart[] = "XXXXXX";

// ".NAME" + infix: the start of every temporary's name beside `target`.
std::string hidden_prefix(const fs::path& target, const std::string& infix) {
  return "." + target.filename().string() + infix;
}

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

// The list of temporaries: fixed slots, filled and read without locks or allocation so that a
// signal handler can read it. state: 0 free, 1 being written, 2 listed.
struct Slot {
  std::atomic<int> state{0};
  bool folder = false;
  char path[PATH_MAX];
};
std::array<Slot, 64> g_slots;

int add_to_own_list(const char* path, bool folder) {
  if (std::strlen(path) >= PATH_MAX) return -1;
  for (size_t i = 0; i < g_slots.size(); ++i) {
    int expected = 0;
    if (!g_slots[i].state.compare_exchange_strong(expected, 1)) continue;
    std::strcpy(g_slots[i].path, path);
    g_slots[i].folder = folder;
    g_slots[i].state.store(2);
    return static_cast<int>(i);
  }
  return -1;
}

void remove_from_own_list(int slot) {
  if (slot >= 0 && slot < static_cast<int>(g_slots.size())) g_slots[static_cast<size_t>(slot)].state.store(0);
}

const TemporaryList kOwnList{&add_to_own_list, &remove_from_own_list};
TemporaryList g_list = kOwnList;

// A folder's files, removed with system calls only (no allocation): for the signal handler.
void remove_folder_now(const char* path) {
  int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    alignas(8) char buf[4096];
    for (;;) {
      long n = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
      if (n <= 0) break;
      for (long at = 0; at < n;) {
        auto* entry = reinterpret_cast<struct dirent64*>(buf + at);
        const char* name = entry->d_name;
        if (!(name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0')))) ::unlinkat(fd, name, 0);
        at += entry->d_reclen;
      }
    }
    ::close(fd);
  }
  ::rmdir(path);
}

int list_temporary(const std::string& path, bool folder) { return g_list.add(path.c_str(), folder); }
void unlist_temporary(int& slot) {
  if (slot >= 0) g_list.remove(slot);
  slot = -1;
}

// A lock on a temporary, held while it is written: remove_stale_temporaries leaves locked ones alone.
int lock_temporary(const std::string& path, bool folder) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (folder ? O_DIRECTORY : 0));
  if (fd >= 0 && ::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(fd);
    fd = -1;
  }
  return fd;
}

void unlock_temporary(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

const TemporaryList& own_temporary_list() { return kOwnList; }
const TemporaryList& current_temporary_list() { return g_list; }
void use_temporary_list(const TemporaryList& list) { g_list = list; }

void remove_listed_temporaries() {
  for (Slot& slot : g_slots) {
    if (slot.state.load() != 2) continue;
    if (slot.folder) {
      remove_folder_now(slot.path);
    } else {
      ::unlink(slot.path);
    }
  }
}

Temporary create_temporary_beside(const std::string& path, const std::string& infix, bool folder) {
  const fs::path target(path);
  const std::string pattern = (target.parent_path() / (hidden_prefix(target, infix) + kRandomPart)).string();
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  Temporary temp;
  const bool made = folder ? mkdtemp(name.data()) != nullptr : (temp.fd = mkstemp(name.data())) >= 0;
  if (!made) {
    throw IoError("cannot create a temporary " + std::string(folder ? "folder" : "file") + " beside " + path + ": " +
                  errno_text() + " (check that the folder is writable)");
  }
  temp.name = name.data();
  return temp;
}

int remove_stale_temporaries(const std::string& path) {
  const fs::path target = without_trailing_separator(path);
  const std::string prefix = hidden_prefix(target, kOutputInfix);
  const fs::path parent = target.parent_path().empty() ? fs::path(".") : target.parent_path();
  std::error_code ec;
  int removed = 0;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() != prefix.size() + sizeof(kRandomPart) - 1 || name.rfind(prefix, 0) != 0) continue;
    const bool folder = entry.is_directory(ec);
    int lock = lock_temporary(entry.path().string(), folder);
    if (lock < 0) continue;  // a live run is writing it
    std::error_code removal;
    fs::remove_all(entry.path(), removal);
    unlock_temporary(lock);
    if (!removal) ++removed;
  }
  return removed;
}

void check_can_write(const std::string& path, bool overwrite) {
  std::error_code ec;
  // A folder is no file to replace: --overwrite would not help, so say so first.
  if (fs::is_directory(path, ec)) throw IoError("output " + path + " is a folder; give a file name");
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
  ensure_parent(target);
  Temporary temp = create_temporary_beside(path, kOutputInfix, false);
  fd_ = temp.fd;
  temp_path_ = temp.name;
  lock_fd_ = lock_temporary(temp_path_, false);
  listed_ = list_temporary(temp_path_, false);
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
  unlist_temporary(listed_);
  unlock_temporary(lock_fd_);
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
  unlist_temporary(listed_);
  unlock_temporary(lock_fd_);
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
  temp_dir_ = create_temporary_beside(dir_, kOutputInfix, true).name;
  // mkdtemp creates 0700; the frames folder is an ordinary folder, readable like any other.
  mode_t mask = umask(0);
  umask(mask);
  ::chmod(temp_dir_.c_str(), 0777 & ~mask);
  lock_fd_ = lock_temporary(temp_dir_, true);
  listed_ = list_temporary(temp_dir_, true);
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
    unlist_temporary(listed_);
    unlock_temporary(lock_fd_);
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
      throw IoError("cannot move " + f.string() + " to " + to.string() + ": " + std::strerror(saved));
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
  unlist_temporary(listed_);
  unlock_temporary(lock_fd_);
  done_ = true;
}

void AtomicDir::discard() {
  if (done_) return;
  std::error_code ec;
  fs::remove_all(temp_dir_, ec);
  unlist_temporary(listed_);
  unlock_temporary(lock_fd_);
  done_ = true;
}

}  // namespace sdinterp::io
