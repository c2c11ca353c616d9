// Column: one value per event of the index, a contiguous array of trivially copyable values in
// table memory (platform/table_memory.h). Columns reach tens of megabytes, and each first touch of
// a normal page costs a page fault (about 5 us on a virtual machine, measured): in huge-page memory
// their growth at append and their bulk restore at open take 512 times fewer faults. A column
// grows by doubling, as a vector does, but in place (platform::grow_table remaps a large table's
// pages instead of copying them): a vector's copy into a new allocation touched every byte of the
// column again at each doubling, and zeroing those fresh pages was a tenth of an append batch's
// time (docs/DECISIONS.md, 2026-12-07).
//
// The subset of std::vector that the index uses; values past size() are not kept.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

#include "platform/table_memory.h"

namespace keel::index {

template <typename T>
class Column {
  static_assert(std::is_trivially_copyable_v<T>, "a column's values are copied as bytes");

 public:
  using value_type = T;

  Column() = default;
  explicit Column(size_t n, const T& value = T{}) { resize(n, value); }
  Column(const Column& other) { append(other.data(), other.size()); }
  Column& operator=(const Column& other) {
    if (this != &other) {
      clear();
      append(other.data(), other.size());
    }
    return *this;
  }
  Column(Column&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  Column& operator=(Column&& other) noexcept {
    if (this != &other) {
      release();
      data_ = std::exchange(other.data_, nullptr);
      size_ = std::exchange(other.size_, 0);
      capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
  }
  ~Column() { release(); }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  size_t capacity() const { return capacity_; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T& back() { return data_[size_ - 1]; }
  const T& back() const { return data_[size_ - 1]; }

  void reserve(size_t n) {
    if (n <= capacity_) return;
    data_ = static_cast<T*>(platform::grow_table(data_, capacity_ * sizeof(T), n * sizeof(T),
                                                 size_ * sizeof(T), alignof(T)));
    capacity_ = n;
  }
  void resize(size_t n, const T& value = T{}) {
    if (n > size_) {
      grow_for(n);
      std::fill(data_ + size_, data_ + n, value);
    }
    size_ = n;
  }
  void push_back(const T& value) {
    if (size_ == capacity_) grow_for(size_ + 1);
    data_[size_++] = value;
  }
  T& emplace_back() {
    push_back(T{});
    return back();
  }
  void append(const T* values, size_t n) {
    if (n == 0) return;
    grow_for(size_ + n);
    std::memcpy(static_cast<void*>(data_ + size_), values, n * sizeof(T));
    size_ += n;
  }
  void clear() { size_ = 0; }

 private:
  // Room for n values, doubling the capacity at least (amortized O(1) appends).
  void grow_for(size_t n) {
    if (n > capacity_) reserve(std::max(n, capacity_ * 2));
  }
  void release() {
    if (data_ != nullptr) platform::free_table(data_, capacity_ * sizeof(T), alignof(T));
    data_ = nullptr;
    size_ = capacity_ = 0;
  }

  T* data_ = nullptr;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

}  // namespace keel::index
