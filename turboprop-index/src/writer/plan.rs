//! The compaction plan of a commit: which base segments are merged into the new segment.
//! Pure: it sees only each segment's row counts and whether it holds every space of the
//! spec, so every rule is pinned by a unit test here.

use std::cmp::Reverse;

use turboprop_types::CompactionConfig;

/// What the plan knows of one base segment, once this commit's deletes apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SegmentFacts {
    /// Rows of the segment, live or deleted.
    pub(super) rows: u64,
    /// Rows still live after this commit's deletes.
    pub(super) live_rows: u64,
    /// Whether the segment holds every space of the spec, made by the spec's models: only
    /// such a segment can be copied from.
    pub(super) complete: bool,
}

/// Which base segments to merge into the new segment: `true` at the index of each, in the
/// order of `segments`. `incoming` says whether the commit puts files into a new segment.
///
/// Segments with too many deleted rows (or none live) are merged; so are all but the
/// largest when there are too many segments:
/// - a segment with no live rows is merged;
/// - a complete segment whose dead rows are more than `max_deleted_ratio` of its rows is
///   merged;
/// - if the segments kept by those two rules, plus one if a new segment will be written
///   (something is incoming, or a segment merged so far has live rows), are more than
///   `max_segments`, every complete segment is merged except the kept one with the most live
///   rows (the first of equals), which is merged too when `max_segments` is below 2.
///
/// A segment lacking a space is merged only when it has no live rows.
pub(super) fn compaction_plan(
    segments: &[SegmentFacts],
    incoming: bool,
    policy: &CompactionConfig,
) -> Vec<bool> {
    let mut merge: Vec<bool> = segments
        .iter()
        .map(|seg| {
            let dead = seg.rows - seg.live_rows;
            // A segment lacking a space is never copied: its files are filled instead, and it
            // goes when none is left.
            seg.live_rows == 0
                || (seg.complete && dead as f64 > policy.max_deleted_ratio * seg.rows as f64)
        })
        .collect();
    let kept = merge.iter().filter(|m| !**m).count();
    let adds_segment = incoming
        || merge
            .iter()
            .zip(segments)
            .any(|(m, seg)| *m && seg.live_rows > 0);
    if kept + usize::from(adds_segment) > policy.max_segments as usize {
        let largest = (0..segments.len())
            .filter(|&s| !merge[s])
            .max_by_key(|&s| (segments[s].live_rows, Reverse(s)));
        // With room for only one segment, the largest is merged too.
        let keep_largest = policy.max_segments >= 2;
        for (s, m) in merge.iter_mut().enumerate() {
            if !(keep_largest && Some(s) == largest) && segments[s].complete {
                *m = true;
            }
        }
    }
    merge
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A complete segment of `rows` rows, `live_rows` of them live.
    fn seg(rows: u64, live_rows: u64) -> SegmentFacts {
        SegmentFacts {
            rows,
            live_rows,
            complete: true,
        }
    }

    /// A segment lacking a space of the spec.
    fn lacking(rows: u64, live_rows: u64) -> SegmentFacts {
        SegmentFacts {
            complete: false,
            ..seg(rows, live_rows)
        }
    }

    fn policy(max_segments: u32, max_deleted_ratio: f64) -> CompactionConfig {
        CompactionConfig {
            max_segments,
            max_deleted_ratio,
        }
    }

    #[test]
    fn nothing_to_merge_without_base_segments() {
        assert!(compaction_plan(&[], true, &policy(1, 0.0)).is_empty());
    }

    #[test]
    fn healthy_segments_under_the_limit_are_kept() {
        let segs = [seg(10, 10), seg(20, 15), seg(8, 8)];
        assert_eq!(
            compaction_plan(&segs, true, &policy(8, 0.25)),
            [false, false, false]
        );
    }

    #[test]
    fn a_segment_without_live_rows_is_merged() {
        let segs = [seg(10, 10), seg(4, 0)];
        // Even with a ratio that merges nothing by deleted rows.
        assert_eq!(
            compaction_plan(&segs, false, &policy(8, 1.0)),
            [false, true]
        );
    }

    #[test]
    fn an_empty_segment_with_no_rows_at_all_is_merged() {
        let segs = [seg(0, 0), seg(10, 10)];
        assert_eq!(
            compaction_plan(&segs, false, &policy(8, 0.25)),
            [true, false]
        );
    }

    #[test]
    fn a_segment_with_more_dead_rows_than_the_ratio_is_merged() {
        // 26 of 100 rows dead is more than a quarter.
        let segs = [seg(100, 74), seg(10, 10)];
        assert_eq!(
            compaction_plan(&segs, true, &policy(8, 0.25)),
            [true, false]
        );
    }

    #[test]
    fn dead_rows_exactly_at_the_ratio_are_kept() {
        // 25 of 100 rows dead is not more than a quarter.
        let segs = [seg(100, 75), seg(10, 10)];
        assert_eq!(
            compaction_plan(&segs, true, &policy(8, 0.25)),
            [false, false]
        );
    }

    #[test]
    fn a_ratio_of_zero_merges_any_segment_with_a_dead_row() {
        let segs = [seg(100, 99), seg(10, 10)];
        assert_eq!(compaction_plan(&segs, true, &policy(8, 0.0)), [true, false]);
    }

    #[test]
    fn a_segment_lacking_a_space_is_never_merged_for_its_dead_rows() {
        let segs = [lacking(100, 1), seg(100, 1)];
        assert_eq!(
            compaction_plan(&segs, true, &policy(8, 0.25)),
            [false, true]
        );
    }

    #[test]
    fn a_segment_lacking_a_space_is_merged_when_nothing_is_live() {
        let segs = [lacking(100, 0), seg(10, 10)];
        assert_eq!(
            compaction_plan(&segs, false, &policy(8, 0.25)),
            [true, false]
        );
    }

    #[test]
    fn segments_up_to_the_limit_with_the_new_one_are_kept() {
        // Two kept plus the new segment is three: not more than three.
        let segs = [seg(10, 10), seg(20, 20)];
        assert_eq!(
            compaction_plan(&segs, true, &policy(3, 0.25)),
            [false, false]
        );
    }

    #[test]
    fn too_many_segments_merge_all_but_the_largest() {
        // Three kept plus the new segment is four, more than three.
        let segs = [seg(10, 10), seg(30, 30), seg(20, 20)];
        assert_eq!(
            compaction_plan(&segs, true, &policy(3, 0.25)),
            [true, false, true]
        );
    }

    #[test]
    fn the_largest_is_by_live_rows_not_rows() {
        // Segment 0 has the most rows, segment 1 the most live ones (ratio 1.0 keeps both).
        let segs = [seg(100, 40), seg(50, 50), seg(10, 10)];
        assert_eq!(
            compaction_plan(&segs, true, &policy(2, 1.0)),
            [true, false, true]
        );
    }

    #[test]
    fn of_equally_large_segments_the_first_is_kept() {
        let segs = [seg(5, 5), seg(20, 20), seg(20, 20), seg(20, 20)];
        assert_eq!(
            compaction_plan(&segs, true, &policy(2, 0.25)),
            [true, false, true, true]
        );
    }

    #[test]
    fn the_largest_is_chosen_among_the_segments_not_already_merged() {
        // Segment 0 is the largest but merged for its dead rows; of the rest, 2 is largest.
        let segs = [seg(1000, 500), seg(10, 10), seg(30, 30)];
        assert_eq!(
            compaction_plan(&segs, true, &policy(2, 0.25)),
            [true, true, false]
        );
    }

    #[test]
    fn with_room_for_one_segment_the_largest_is_merged_too() {
        let segs = [seg(10, 10), seg(30, 30)];
        assert_eq!(compaction_plan(&segs, true, &policy(1, 0.25)), [true, true]);
    }

    #[test]
    fn one_segment_alone_fits_a_limit_of_one() {
        // Nothing incoming and nothing merged: one segment is not more than one.
        let segs = [seg(10, 10)];
        assert_eq!(compaction_plan(&segs, false, &policy(1, 0.25)), [false]);
    }

    #[test]
    fn one_segment_and_a_new_one_overflow_a_limit_of_one() {
        let segs = [seg(10, 10)];
        assert_eq!(compaction_plan(&segs, true, &policy(1, 0.25)), [true]);
    }

    #[test]
    fn too_many_segments_never_merge_one_lacking_a_space() {
        let segs = [lacking(10, 10), seg(30, 30), seg(20, 20)];
        assert_eq!(
            compaction_plan(&segs, true, &policy(2, 0.25)),
            [false, false, true]
        );
        assert_eq!(
            compaction_plan(&segs, true, &policy(1, 0.25)),
            [false, true, true]
        );
    }

    #[test]
    fn a_largest_segment_lacking_a_space_is_kept_and_every_complete_one_merged() {
        // The largest kept segment lacks a space: it stays, and so no complete one is spared.
        let segs = [seg(10, 10), lacking(50, 50), seg(30, 30)];
        assert_eq!(
            compaction_plan(&segs, true, &policy(2, 0.25)),
            [true, false, true]
        );
    }

    #[test]
    fn without_incoming_files_the_new_segment_does_not_count() {
        // Two kept and nothing written: not more than two.
        let segs = [seg(10, 10), seg(20, 20)];
        assert_eq!(
            compaction_plan(&segs, false, &policy(2, 0.25)),
            [false, false]
        );
        // With incoming files, three is more than two.
        assert_eq!(
            compaction_plan(&segs, true, &policy(2, 0.25)),
            [true, false]
        );
    }

    #[test]
    fn a_merged_segment_with_live_rows_counts_as_a_new_segment() {
        // Segment 0 is merged for its dead rows; its live rows make a new segment, so the
        // two kept plus it are more than two.
        let segs = [seg(100, 10), seg(10, 10), seg(20, 20)];
        assert_eq!(
            compaction_plan(&segs, false, &policy(2, 0.25)),
            [true, true, false]
        );
    }

    #[test]
    fn a_merged_segment_without_live_rows_does_not_count_as_a_new_segment() {
        // Segment 0 goes with nothing live: no new segment, and two kept fit two.
        let segs = [seg(100, 0), seg(10, 10), seg(20, 20)];
        assert_eq!(
            compaction_plan(&segs, false, &policy(2, 0.25)),
            [true, false, false]
        );
    }

    #[test]
    fn too_many_segments_merge_even_without_a_new_segment() {
        // Nothing incoming, nothing merged by the first rules: three kept overflow two.
        let segs = [seg(10, 10), seg(20, 20), seg(30, 30)];
        assert_eq!(
            compaction_plan(&segs, false, &policy(2, 0.25)),
            [true, true, false]
        );
        // Exactly at the limit, without incoming files, nothing is merged.
        assert_eq!(
            compaction_plan(&segs, false, &policy(3, 0.25)),
            [false, false, false]
        );
    }
}
