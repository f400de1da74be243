package loglines

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestFrom(t *testing.T) {
	tests := []struct {
		name  string
		log   string
		from  int64
		whole bool
		lines []string
		n     int64
	}{
		{"from the start", "a\nbb\n", 0, false, []string{"a", "bb"}, 5},
		{"past what was printed", "a\nbb\nc\n", 2, false, []string{"bb", "c"}, 7},
		{"an unfinished last line, following", "a\nbb", 0, false, []string{"a"}, 2},
		{"an unfinished last line, whole", "a\nbb", 0, true, []string{"a", "bb"}, 4},
		{"nothing new", "a\n", 2, false, nil, 2},
		{"shorter than the offset", "a\n", 9, true, nil, 9},
		{"an empty line", "\n\n", 0, false, []string{"", ""}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			n, err := From(strings.NewReader(tt.log), tt.from, tt.whole, func(s string) { got = append(got, s) })
			if err != nil || n != tt.n || !slices.Equal(got, tt.lines) {
				t.Errorf("From = %d, %v, lines %q; want %d, lines %q", n, err, got, tt.n, tt.lines)
			}
		})
	}
}

// A read that breaks mid-stream reports the offset of the last whole line
// given, where the next read resumes.
func TestFromBrokenStream(t *testing.T) {
	broken := errors.New("connection reset")
	r := io.MultiReader(strings.NewReader("one\ntw"), &failing{broken})
	var got []string
	n, err := From(r, 0, false, func(s string) { got = append(got, s) })
	if !errors.Is(err, broken) || n != 4 || !slices.Equal(got, []string{"one"}) {
		t.Fatalf("From = %d, %v, %q; want 4, the reset, [one]", n, err, got)
	}
	got = nil
	if n, err = From(strings.NewReader("one\ntwo\n"), n, true, func(s string) { got = append(got, s) }); err != nil || n != 8 || !slices.Equal(got, []string{"two"}) {
		t.Fatalf("resumed: %d, %v, %q; want 8, [two]", n, err, got)
	}
}

type failing struct{ err error }

func (f *failing) Read([]byte) (int, error) { return 0, f.err }
