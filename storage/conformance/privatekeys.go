package conformance

import (
	"slices"
	"testing"

	"github.com/ltikeys/ltikeys/storage"
)

// testPrivateKeys pages through every key with PrivateKeys: retired keys
// and keys of deleted registrations included, each once, in Seq order,
// with the sealed private half and every other field as GetKey returns
// them; a page shorter than the limit ends the pass.
func testPrivateKeys(t *testing.T, s storage.Store) {
	ctx := t.Context()
	if keys, err := s.PrivateKeys(ctx, 0, 10); err != nil || len(keys) != 0 {
		t.Fatalf("PrivateKeys of an empty store = %v, %v; want none", keys, err)
	}
	a, k1 := mustCreate(t, s)
	b, _ := mustCreate(t, s)
	mustRotate(t, s, a.ID)
	if _, err := s.RetireKey(ctx, k1.KID); err != nil {
		t.Fatalf("RetireKey: %v", err)
	}
	mustCreate(t, s)
	if _, err := s.DeleteRegistration(ctx, b.ID); err != nil {
		t.Fatalf("DeleteRegistration: %v", err)
	}
	kids := mustKeyIDs(t, s) // 4 keys, one retired, one of a deleted registration

	var got []storage.Key
	var after int64
	pages := 0
	for {
		page, err := s.PrivateKeys(ctx, after, 3)
		if err != nil {
			t.Fatalf("PrivateKeys(%d, 3): %v", after, err)
		}
		if pages++; pages > len(kids) {
			t.Fatalf("PrivateKeys did not end after %d pages: %d keys so far", pages, len(got))
		}
		got = append(got, page...)
		if len(page) < 3 {
			break
		}
		after = page[len(page)-1].Seq
	}
	if pages != 2 {
		t.Errorf("4 keys, 3 a page, took %d pages, want 2", pages)
	}
	gotKIDs := make([]string, len(got))
	for i, k := range got {
		gotKIDs[i] = k.KID
		if i > 0 && k.Seq <= got[i-1].Seq {
			t.Errorf("PrivateKeys not in Seq order: %d after %d", k.Seq, got[i-1].Seq)
		}
		want := mustGetKey(t, s, k.KID)
		checkKey(t, "PrivateKeys "+k.KID, k, want)
		if k.Seq != want.Seq || !k.ActivatesAt.Equal(want.ActivatesAt) || !k.SupersededAt.Equal(want.SupersededAt) ||
			!k.RetireAt.Equal(want.RetireAt) || !k.RetiredAt.Equal(want.RetiredAt) {
			t.Errorf("PrivateKeys %s = %+v, want %+v", k.KID, k, want)
		}
	}
	if !slices.Equal(slices.Sorted(slices.Values(gotKIDs)), slices.Sorted(slices.Values(kids))) {
		t.Fatalf("PrivateKeys visited %q, want every key once: %q", gotKIDs, kids)
	}

	// A page starts after afterSeq, not at it.
	if page, err := s.PrivateKeys(ctx, got[1].Seq, 1); err != nil || len(page) != 1 || page[0].KID != got[2].KID {
		t.Errorf("PrivateKeys(seq of the 2nd key, 1) = %v, %v; want only the 3rd key %s", page, err, got[2].KID)
	}
	if page, err := s.PrivateKeys(ctx, got[len(got)-1].Seq, 10); err != nil || len(page) != 0 {
		t.Errorf("PrivateKeys after the last key = %v, %v; want none", page, err)
	}
	for _, limit := range []int{0, -1} {
		if page, err := s.PrivateKeys(ctx, 0, limit); err == nil {
			t.Errorf("PrivateKeys with limit %d = %d keys and no error, want an error", limit, len(page))
		}
	}
}
