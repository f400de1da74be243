package dag

import (
	"slices"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		nodes   []Node
		wantErr string
		prev    map[string][]string
	}{
		{
			name:  "diamond",
			nodes: []Node{{Name: "a"}, {Name: "b", After: []string{"a"}}, {Name: "c", After: []string{"a"}}, {Name: "d", After: []string{"b", "c", "b"}}},
			prev:  map[string][]string{"a": nil, "b": {"a"}, "c": {"a"}, "d": {"b", "c"}},
		},
		{name: "unknown", nodes: []Node{{Name: "a", After: []string{"x"}}}, wantErr: `task "a" depends on "x", which does not exist`},
		{name: "duplicate", nodes: []Node{{Name: "a"}, {Name: "a"}}, wantErr: `task "a" is declared twice`},
		{name: "self", nodes: []Node{{Name: "a", After: []string{"a"}}}, wantErr: `task "a" depends on itself`},
		{
			name:    "cycle",
			nodes:   []Node{{Name: "a", After: []string{"c"}}, {Name: "b", After: []string{"a"}}, {Name: "c", After: []string{"b"}}, {Name: "d"}},
			wantErr: "cycle: a -> b -> c -> a",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(tt.nodes)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for name, want := range tt.prev {
				i, _ := g.Index(name)
				var got []string
				for _, p := range g.Prev(i) {
					got = append(got, g.Name(p))
				}
				if !slices.Equal(got, want) {
					t.Errorf("Prev(%s) = %v, want %v", name, got, want)
				}
			}
			d, _ := g.Index("d")
			a, _ := g.Index("a")
			if len(g.Next(a)) != 2 || g.Len() != 4 || len(g.Prev(d)) != 2 {
				t.Errorf("Next(a)=%v Len=%d", g.Next(a), g.Len())
			}
		})
	}
}
