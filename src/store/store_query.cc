// Queries and causal queries (include/keel/query.h): answered on the in-memory indexes
// (index/selection.h, index/causal.h), with only a page's events read from the log.
#include <algorithm>
#include <string>

#include "index/causal.h"
#include "index/selection.h"
#include "store/store_impl.h"

namespace keel {
namespace {

StoreError bad_query(std::string_view field, std::string_view reason) {
  return StoreError(ErrorCode::InvalidArgument)
      .with("argument", std::string(field))
      .with("reason", std::string(reason));
}

Status check_limit(std::string_view field, size_t limit) {
  if (limit == 0) return bad_query(field, "must be at least 1");
  if (limit > kQueryLimitMax) {
    return bad_query(field, "is above the maximum of " + std::to_string(kQueryLimitMax));
  }
  return ok_status();
}

Status check_query(const Query& q, uint32_t lanes_max) {
  if (q.entity && q.entity_prefix)
    return bad_query("entity", "entity and entity_prefix are both set");
  if (q.entity) KEEL_TRY(validate_coordinate(*q.entity, ""));
  if (q.entity_prefix) {
    if (q.entity_prefix->find('\0') != std::string::npos) {
      return bad_query("entity_prefix", "contains a NUL byte");
    }
    if (q.entity_prefix->size() > kEntityMaxBytes) {
      return bad_query("entity_prefix", "is longer than an entity may be");
    }
  }
  if (q.lane && *q.lane >= lanes_max) {
    return bad_query("lane", "is not below lanes_max (" + std::to_string(lanes_max) + ")");
  }
  bool clock_range = q.clock_from != 1 || q.clock_to != UINT64_MAX;
  if (clock_range && !q.entity && !q.entity_prefix) {
    return bad_query("clock_from", "a clock range needs entity or entity_prefix");
  }
  if (q.clock_from > q.clock_to) return bad_query("clock_from", "is above clock_to");
  if (q.sequence_from > q.sequence_to) return bad_query("sequence_from", "is above sequence_to");
  if (q.hlc_from && q.hlc_to && *q.hlc_to < *q.hlc_from) {
    return bad_query("hlc_from", "is above hlc_to");
  }
  if (q.category && *q.category > 15) return bad_query("category", "is above 15");
  if (q.category && q.kind && q.kind->category() != *q.category) {
    return bad_query("category", "disagrees with kind's category");
  }
  return check_limit("limit", q.limit);
}

// An owned event from a view, without the payload and metadata unless asked for.
Event event_of(EventView view, bool with_payload) {
  if (!with_payload) {
    view.payload = {};
    view.metadata.reset();
  }
  return Event::from_view(view);
}

}  // namespace

const char* causal_order_name(CausalOrder order) {
  switch (order) {
    case CausalOrder::Before:
      return "before";
    case CausalOrder::After:
      return "after";
    case CausalOrder::Concurrent:
      return "concurrent";
  }
  return "unknown";
}

Result<uint64_t> Store::Impl::visible_sequence_of(const EventId& id) const {
  std::optional<uint64_t> sequence = index_.find(id);
  if (!sequence || *sequence > sequence_visible() || *sequence < first_retained_sequence_) {
    return StoreError(ErrorCode::NotFound).with("what", "visible event").with("key", id.to_hex());
  }
  return *sequence;
}

EventRef Store::Impl::ref_at(uint64_t sequence) const {
  const index::EntityStream& stream = index_.stream_at(sequence);
  EventRef ref;
  ref.sequence = sequence;
  ref.event_id = index_.id_at(sequence);
  ref.entity = std::string(stream.entity);
  ref.lane = stream.lane;
  ref.entity_clock = stream.clock_of(sequence);
  ref.kind = EventKind{index_.kind_at(sequence)};
  ref.scope = index_.scope_name(index_.scope_number_at(sequence));
  ref.hlc = index_.hlc_at(sequence);
  return ref;
}

Result<QueryPage> Store::Impl::query_views(const Query& q, const ViewSink& visit) {
  std::unique_lock lock(mutex_);
  KEEL_TRY(check_open());
  KEEL_TRY(check_query(q, options_.lanes_max));
  // Events below the retention floor are gone: the indexes keep them (store_retention.cc), pages
  // start above them. A page resuming after a cursor is a resume: when events between the cursor
  // and the floor were removed it is CursorExpired, never clamped (first_retained == cursor + 1
  // is sound: nothing after the cursor is gone).
  if (q.order == Order::Ascending && q.after) {
    if (*q.after == UINT64_MAX) {
      return StoreError(ErrorCode::InvalidArgument)
          .with("argument", "after")
          .with("reason", "no sequence follows 18446744073709551615");
    }
    if (*q.after + 1 < first_retained_sequence_ &&
        !options_.unsafe_clamp_expired_cursors_for_test) {
      return StoreError(ErrorCode::CursorExpired)
          .with("cursor", *q.after)
          .with("first_retained", first_retained_sequence_);
    }
  }
  Query retained = q;
  retained.sequence_from = std::max(q.sequence_from, first_retained_sequence_);
  std::vector<uint64_t> sequences =
      index::select(index_, retained, sequence_visible(), q.limit + 1);
  QueryPage page;
  page.visible = sequence_visible();
  if (sequences.size() > q.limit) {
    sequences.pop_back();
    page.next_after = sequences.back();
  }
  // The page's frames are found under the mutex, read after it is released (so pages, subscribers
  // catching up many at once, do not hold up appends), and decoded and visited with no lock held
  // (a visitor may call into the store). Visible events do not change; while the frames are read
  // segments_in_use_ keeps retention from removing their files, and close() waits for the call.
  std::vector<FrameAt> frames;
  frames.reserve(sequences.size());
  for (uint64_t sequence : sequences) {
    std::optional<FrameAt> at = frame_at_locked(sequence);
    if (!at) {
      return StoreError(ErrorCode::InvariantViolation)
          .with("invariant", "selected sequence " + std::to_string(sequence) + " has no frame");
    }
    frames.push_back(*at);
  }
  log::HeldFrames held;
  {
    ActiveCall active(*this);
    std::shared_lock in_use(segments_in_use_);
    lock.unlock();
    KEEL_TRY(reader_.hold_frames(frames, held));
  }
  // The events of one batch share a frame: it is verified and decoded once for all of them.
  std::vector<EventView> group;
  for (size_t i = 0; i < frames.size();) {
    size_t end = i + 1;
    while (end < frames.size() && frames[end].segment_id == frames[i].segment_id &&
           frames[end].offset == frames[i].offset) {
      ++end;
    }
    format::DecodedFrame frame;
    auto decoded = format::decode_frame(held.frames[i], frames[i].segment_id, frame);
    if (decoded != format::FrameDecode::Ok) {
      return reader_.frame_error(frames[i].segment_id, frames[i].offset, decoded);
    }
    // The group's events in record (ascending) order; a descending page visits them reversed.
    const bool descending = end - i > 1 && sequences[i] > sequences[i + 1];
    group.clear();
    const char* problem =
        format::decode_record_events(frame, [&](uint32_t k, const format::EventBody& body) {
          const uint64_t sequence = frame.header.sequence + k;
          const size_t at = descending ? end - 1 - group.size() : i + group.size();
          if (group.size() < end - i && sequence == sequences[at]) {
            group.push_back(view_of(body, sequence, frame.header.epoch));
          }
        });
    if (problem != nullptr) {
      return read_corruption(sequences[i], std::string(problem) + " (offset is the sequence)");
    }
    if (group.size() != end - i) {
      const uint64_t missing =
          descending ? sequences[end - 1 - group.size()] : sequences[i + group.size()];
      return read_corruption(missing, "the indexed record does not hold this sequence");
    }
    if (descending) std::reverse(group.begin(), group.end());
    for (const EventView& view : group) visit(view);
    i = end;
  }
  return page;
}

Result<QueryPage> Store::Impl::query(const Query& q) {
  std::vector<Event> events;
  KEEL_ASSIGN_OR_RETURN(QueryPage page, query_views(q, [&](const EventView& view) {
                          events.push_back(event_of(view, q.with_payload));
                        }));
  page.events = std::move(events);
  return page;
}

Result<Ancestry> Store::Impl::ancestors(const EventId& id, size_t limit) {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  if (limit == 0) return bad_query("limit", "must be at least 1");
  KEEL_ASSIGN_OR_RETURN(uint64_t sequence, visible_sequence_of(id));
  index::AncestorWalk walk = index::ancestors(index_, sequence, limit);
  if (walk.forward_from != 0) {
    return StoreError(ErrorCode::Corruption)
        .with("path", directory_)
        .with("offset", walk.forward_from)
        .with("reason", "the cause of sequence " + std::to_string(walk.forward_from) +
                            " is the later sequence " + std::to_string(walk.forward_to) +
                            " (a causation cycle or forward link; offset is the sequence)")
        .with("rule", "causal walk");
  }
  Ancestry ancestry;
  ancestry.external_cause = walk.external_cause;
  ancestry.chain.reserve(walk.chain.size());
  for (uint64_t s : walk.chain) ancestry.chain.push_back(ref_at(s));
  return ancestry;
}

Result<Effects> Store::Impl::descendants(const EventId& id, size_t limit) {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  KEEL_TRY(check_limit("limit", limit));
  KEEL_ASSIGN_OR_RETURN(uint64_t sequence, visible_sequence_of(id));
  Effects effects;
  std::vector<uint64_t> found =
      index::descendants(index_, sequence, sequence_visible(), limit, effects.truncated);
  effects.events.reserve(found.size());
  for (uint64_t s : found) effects.events.push_back(ref_at(s));
  return effects;
}

Result<CausalGraph> Store::Impl::correlation_graph(const EventId& correlation_id, size_t limit) {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  KEEL_TRY(check_limit("limit", limit));
  CausalGraph graph;
  std::vector<uint64_t> members = index::correlation_members(index_, correlation_id);
  const uint64_t visible = sequence_visible();
  while (!members.empty() && members.back() > visible) members.pop_back();
  if (members.size() > limit) {
    members.resize(limit);
    graph.truncated = true;
  }
  for (uint64_t s : members) {
    graph.nodes.push_back(ref_at(s));
    const EventId& effect = index_.id_at(s);
    if (uint64_t cause = index_.cause_of(s); cause != 0) {
      bool inside = std::binary_search(members.begin(), members.end(), cause);
      (inside ? graph.edges : graph.outside_causes)
          .push_back(CausalEdge{index_.id_at(cause), effect});
    } else if (std::optional<EventId> external = index_.external_cause_of(s)) {
      graph.outside_causes.push_back(CausalEdge{*external, effect});
    }
  }
  return graph;
}

Result<CausalRelation> Store::Impl::happened_before(const EventId& a, const EventId& b) {
  std::lock_guard lock(mutex_);
  KEEL_TRY(check_open());
  KEEL_ASSIGN_OR_RETURN(uint64_t sa, visible_sequence_of(a));
  KEEL_ASSIGN_OR_RETURN(uint64_t sb, visible_sequence_of(b));
  if (sa == sb) return bad_query("b", "is the same event as a");
  CausalRelation relation;
  Hlc ha = index_.hlc_at(sa);
  Hlc hb = index_.hlc_at(sb);
  relation.hlc_order = ha < hb ? -1 : (hb < ha ? 1 : 0);
  if (sa < sb && index::is_ancestor(index_, sa, sb)) {
    relation.order = CausalOrder::Before;
  } else if (sb < sa && index::is_ancestor(index_, sb, sa)) {
    relation.order = CausalOrder::After;
  }
  return relation;
}

}  // namespace keel
