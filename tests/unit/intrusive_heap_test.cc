#include <doctest/doctest.h>

#include <memory>
#include <random>
#include <set>
#include <vector>

#include "server/engine/intrusive_heap.h"

namespace intrusive_heap_test {

using tq::engine::IntrusiveHeap;
using tq::engine::kNoSlot;

namespace {

struct Item {
  int key;
  int serial;
  uint32_t slot = kNoSlot;
};
struct ItemSlot {
  static uint32_t& get(Item* i) { return i->slot; }
};
struct ItemLess {
  bool operator()(const Item* a, const Item* b) const {
    return a->key != b->key ? a->key < b->key : a->serial < b->serial;
  }
};
using Heap = IntrusiveHeap<Item, ItemLess, ItemSlot>;

}  // namespace

TEST_SUITE("intrusive_heap") {
  TEST_CASE("random pushes, erases, updates and pops agree with an ordered set") {
    std::mt19937 rng(7);
    std::vector<std::unique_ptr<Item>> items;
    Heap heap;
    auto cmp = [](const Item* a, const Item* b) { return ItemLess{}(a, b); };
    std::set<Item*, decltype(cmp)> model(cmp);
    for (int step = 0; step < 20000; ++step) {
      int op = static_cast<int>(rng() % 4);
      if (op == 0 || model.empty()) {
        items.push_back(std::make_unique<Item>(Item{static_cast<int>(rng() % 100), step}));
        heap.push(items.back().get());
        model.insert(items.back().get());
      } else if (op == 1) {
        CHECK(heap.top() == *model.begin());
        model.erase(model.begin());
        heap.pop();
      } else if (op == 2) {
        auto it = model.begin();
        std::advance(it, rng() % model.size());
        Item* victim = *it;
        model.erase(it);
        heap.erase(victim);
        CHECK(victim->slot == kNoSlot);
      } else {
        auto it = model.begin();
        std::advance(it, rng() % model.size());
        Item* changed = *it;
        model.erase(it);
        changed->key = static_cast<int>(rng() % 100);
        model.insert(changed);
        heap.update(changed);
      }
      REQUIRE(heap.size() == model.size());
      if (!model.empty()) REQUIRE(heap.top() == *model.begin());
    }
    for (Item* item : heap.items()) CHECK(heap.items()[item->slot] == item);
  }

  TEST_CASE("first(n) walks the n smallest in order without changing the heap") {
    std::vector<std::unique_ptr<Item>> items;
    Heap heap;
    for (int i = 0; i < 100; ++i) {
      items.push_back(std::make_unique<Item>(Item{(i * 37) % 100, i}));
      heap.push(items.back().get());
    }
    std::vector<int> keys;
    heap.first(10, [&](Item* item) { keys.push_back(item->key); });
    CHECK(keys == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
    CHECK(heap.size() == 100);
    CHECK(heap.top()->key == 0);
  }
}

}  // namespace intrusive_heap_test
