// A binary min-heap of pointers whose elements know their own position, so
// that any element can be removed or re-keyed in O(log n), not only the top.
// Every timer in the engine (delays, leases, TTLs) and every ready list is one
// of these: no operation ever scans all jobs.
//
// Invariant: for every element e at index i, Slot::get(e) == i; an element not
// in any heap has slot kNoSlot. An element is in at most one heap per Slot.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace tq::engine {

inline constexpr uint32_t kNoSlot = UINT32_MAX;

// Less(a, b): a comes out before b. Slot::get(T*) returns a uint32_t&.
template <typename T, typename Less, typename Slot>
class IntrusiveHeap {
 public:
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  T* top() const { return items_.empty() ? nullptr : items_.front(); }

  void push(T* item) {
    items_.push_back(item);
    Slot::get(item) = static_cast<uint32_t>(items_.size() - 1);
    sift_up(items_.size() - 1);
  }

  T* pop() {
    T* item = items_.front();
    erase(item);
    return item;
  }

  void erase(T* item) {
    size_t i = Slot::get(item);
    size_t last = items_.size() - 1;
    if (i != last) {
      place(i, items_[last]);
      items_.pop_back();
      // The moved element may belong above or below its new place.
      if (!sift_up(i)) sift_down(i);
    } else {
      items_.pop_back();
    }
    Slot::get(item) = kNoSlot;
  }

  // Restores order after the key of `item` changed.
  void update(T* item) {
    size_t i = Slot::get(item);
    if (!sift_up(i)) sift_down(i);
  }

  // Calls f(item) for the n first elements in order, without changing the
  // heap: a best-first walk with a frontier, O(n log n) for n elements.
  template <typename F>
  void first(size_t n, F&& f) const {
    if (items_.empty() || n == 0) return;
    std::vector<size_t> frontier{0};
    auto later = [this](size_t a, size_t b) { return Less{}(items_[b], items_[a]); };
    while (!frontier.empty() && n-- > 0) {
      std::pop_heap(frontier.begin(), frontier.end(), later);
      size_t i = frontier.back();
      frontier.pop_back();
      f(items_[i]);
      for (size_t child : {2 * i + 1, 2 * i + 2}) {
        if (child < items_.size()) {
          frontier.push_back(child);
          std::push_heap(frontier.begin(), frontier.end(), later);
        }
      }
    }
  }

  // Every element, in no particular order.
  const std::vector<T*>& items() const { return items_; }

  // Exchanges the elements with `other`'s (their slots stay right: each
  // keeps its index).
  void swap(IntrusiveHeap& other) noexcept { items_.swap(other.items_); }

  // Removes the last element of the array, a leaf: nothing else moves.
  T* pop_back() {
    T* item = items_.back();
    items_.pop_back();
    Slot::get(item) = kNoSlot;
    return item;
  }

  // Forgets every item without touching it: for items freed, or about to be,
  // by their owner.
  void abandon() { std::vector<T*>().swap(items_); }

  void clear() {
    for (T* item : items_) Slot::get(item) = kNoSlot;
    items_.clear();
  }

  // Empties the heap, then hands each element (its slot cleared) to f, in no
  // particular order; f may free it.
  template <typename F>
  void take_all(F&& f) {
    std::vector<T*> taken;
    taken.swap(items_);
    for (T* item : taken) {
      Slot::get(item) = kNoSlot;
      f(item);
    }
  }

 private:
  void place(size_t i, T* item) {
    items_[i] = item;
    Slot::get(item) = static_cast<uint32_t>(i);
  }

  bool sift_up(size_t i) {
    T* item = items_[i];
    size_t start = i;
    while (i > 0) {
      size_t parent = (i - 1) / 2;
      if (!Less{}(item, items_[parent])) break;
      place(i, items_[parent]);
      i = parent;
    }
    place(i, item);
    return i != start;
  }

  void sift_down(size_t i) {
    T* item = items_[i];
    const size_t n = items_.size();
    for (;;) {
      size_t child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && Less{}(items_[child + 1], items_[child])) ++child;
      if (!Less{}(items_[child], item)) break;
      place(i, items_[child]);
      i = child;
    }
    place(i, item);
  }

  std::vector<T*> items_;
};

}  // namespace tq::engine
