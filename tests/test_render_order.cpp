// The render order of a walk, without a model: which frames are rendered, in which chunks, and the
// written sequence made from them (frames equal by construction rendered once).
#include <gtest/gtest.h>

#include <stdexcept>

#include "sdinterp/batching.h"

namespace sdinterp {
namespace {

Frame tagged(int tag) {
  Frame f;
  f.width = f.height = 1;
  f.rgb = {static_cast<uint8_t>(tag), 0, 0};
  return f;
}

// Feeds an order's rendered frames (tagged with their index) through a Writer; the tags written.
std::vector<int> written(const RenderOrder& order) {
  std::vector<int> out;
  RenderOrder::Writer writer(order, [&](const Frame& f) { out.push_back(f.rgb[0]); });
  for (int64_t index : order.rendered()) writer.add(index, tagged(static_cast<int>(index)));
  writer.finish();
  return out;
}

TEST(RenderOrder, EveryFrameRenderedWhenNoneRepeats) {
  const RenderOrder order({0, 1, 2, 3, 4}, 2);
  EXPECT_EQ(order.rendered(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  const auto chunks = order.chunks();
  ASSERT_EQ(chunks.size(), 3u);
  EXPECT_EQ(chunks[0].first, 0);
  EXPECT_EQ(chunks[0].count, 2);
  EXPECT_EQ(chunks[2].first, 4);
  EXPECT_EQ(chunks[2].count, 1);
  EXPECT_EQ(written(order), (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(RenderOrder, RepeatsAreWrittenFromTheirFirstFrame) {
  // A hold (frames 1-2 repeat 1), a repeated keyframe (5 repeats 0), and repeats after the last
  // rendered frame (6, 7 repeat 4).
  const RenderOrder order({0, 1, 1, 1, 4, 0, 4, 4}, 2);
  EXPECT_EQ(order.rendered(), (std::vector<int64_t>{0, 1, 4}));
  EXPECT_EQ(order.chunks().size(), 2u);
  EXPECT_EQ(written(order), (std::vector<int>{0, 1, 1, 1, 4, 0, 4, 4}));
}

TEST(RenderOrder, BatchIsAtLeastOne) {
  RenderOrder order({0, 1, 2});
  EXPECT_EQ(order.batch(), 1);
  order.set_batch(0);
  EXPECT_EQ(order.batch(), 1);
  order.set_batch(8);
  ASSERT_EQ(order.chunks().size(), 1u);
  EXPECT_EQ(order.chunks()[0].count, 3);
}

TEST(RenderOrder, RefusesWhatIsNotARenderOrder) {
  EXPECT_THROW(RenderOrder({1, 1}), std::invalid_argument);     // repeats a later frame
  EXPECT_THROW(RenderOrder({0, 0, 1}), std::invalid_argument);  // repeats a frame that is itself a repeat
  EXPECT_THROW(RenderOrder({0, -1}), std::invalid_argument);
  const RenderOrder order({0, 1, 2});
  RenderOrder::Writer skipping(order, [](const Frame&) {});
  EXPECT_THROW(skipping.add(1, tagged(1)), std::logic_error);  // frame 0 was never added
  RenderOrder::Writer backwards(order, [](const Frame&) {});
  backwards.add(0, tagged(0));
  backwards.add(1, tagged(1));
  EXPECT_THROW(backwards.add(0, tagged(0)), std::logic_error);
  RenderOrder::Writer cut_short(order, [](const Frame&) {});
  cut_short.add(0, tagged(0));
  EXPECT_THROW(cut_short.finish(), std::logic_error);  // frames 1 and 2 were never added
}

}  // namespace
}  // namespace sdinterp
