// Opening AOTInductor packages from several threads at once (src/bundle/package_loader.h): every
// read gives the package's own metadata, nothing crashes or hangs. Packages are compiled by the
// exporter (minutes), so this test takes them from SDINTERP_TEST_PACKAGES (paths separated by
// ':'); tests/python/test_aoti.py runs it on the packages its session compiled. Without them it is
// skipped.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "bundle/package_loader.h"

namespace sdinterp {
namespace {

std::vector<std::string> packages_from_environment() {
  std::vector<std::string> out;
  const char* list = std::getenv("SDINTERP_TEST_PACKAGES");
  if (list == nullptr) return out;
  std::stringstream in(list);
  for (std::string path; std::getline(in, path, ':');) {
    if (!path.empty()) out.push_back(path);
  }
  return out;
}

TEST(PackageLoader, ManyThreadsOpenPackagesAtOnce) {
  const std::vector<std::string> packages = packages_from_environment();
  if (packages.empty()) GTEST_SKIP() << "SDINTERP_TEST_PACKAGES names no packages (test_aoti.py runs this)";
  std::vector<std::map<std::string, std::string>> expected;
  for (const std::string& path : packages) {
    expected.push_back(read_package_metadata(path));
    ASSERT_FALSE(expected.back()["AOTI_DEVICE_KEY"].empty()) << path;
  }

  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  std::atomic<int> reads{0};
  std::atomic<int> opened{0};
  std::mutex failures_lock;
  std::vector<std::string> failures;
  auto fail = [&](const std::string& what) {
    const std::lock_guard<std::mutex> hold(failures_lock);
    failures.push_back(what);
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < kRounds; ++round) {
        const size_t which = static_cast<size_t>(t + round) % packages.size();
        try {
          if (read_package_metadata(packages[which]) != expected[which]) fail("metadata of " + packages[which]);
          ++reads;
          if (round % 8 == t % 8) {  // now and then the constructor, which parses the metadata too
            const auto package = open_package(packages[which], -1);
            const auto metadata = package->get_metadata();
            if (std::map<std::string, std::string>(metadata.begin(), metadata.end()) != expected[which])
              fail("opened metadata of " + packages[which]);
            ++opened;
          }
        } catch (const std::exception& e) {
          fail(packages[which] + ": " + e.what());
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_TRUE(failures.empty()) << failures.size() << " failures, the first: " << failures.front();
  EXPECT_EQ(reads.load(), kThreads * kRounds);
  EXPECT_GT(opened.load(), 0);
}

}  // namespace
}  // namespace sdinterp
