// Package dag is the dependency graph of a pipeline's tasks: which task waits for which.
package dag

import (
	"fmt"
	"strings"
)

// Node is a task and the names of the tasks it runs after.
type Node struct {
	Name  string
	After []string
}

// Graph is an acyclic graph of tasks, indexed in declaration order.
type Graph struct {
	names []string
	index map[string]int
	prev  [][]int
	next  [][]int
}

// New builds the graph of nodes. It fails on a duplicate name, a dependency
// on an unknown task, or a cycle.
func New(nodes []Node) (*Graph, error) {
	g := &Graph{
		names: make([]string, len(nodes)),
		index: make(map[string]int, len(nodes)),
		prev:  make([][]int, len(nodes)),
		next:  make([][]int, len(nodes)),
	}
	for i, n := range nodes {
		if _, dup := g.index[n.Name]; dup {
			return nil, fmt.Errorf("task %q is declared twice", n.Name)
		}
		g.names[i] = n.Name
		g.index[n.Name] = i
	}
	for i, n := range nodes {
		seen := map[int]bool{}
		for _, a := range n.After {
			j, ok := g.index[a]
			if !ok {
				return nil, fmt.Errorf("task %q depends on %q, which does not exist", n.Name, a)
			}
			if j == i {
				return nil, fmt.Errorf("cycle: task %q depends on itself", n.Name)
			}
			if seen[j] {
				continue
			}
			seen[j] = true
			g.prev[i] = append(g.prev[i], j)
			g.next[j] = append(g.next[j], i)
		}
	}
	if cyc := g.findCycle(); cyc != nil {
		return nil, fmt.Errorf("cycle: %s", strings.Join(cyc, " -> "))
	}
	return g, nil
}

// Len is the number of tasks.
func (g *Graph) Len() int { return len(g.names) }

// Name is the name of task i.
func (g *Graph) Name(i int) string { return g.names[i] }

// Index is the index of the named task.
func (g *Graph) Index(name string) (int, bool) {
	i, ok := g.index[name]
	return i, ok
}

// Prev lists the tasks task i waits for.
func (g *Graph) Prev(i int) []int { return g.prev[i] }

// Next lists the tasks that wait for task i.
func (g *Graph) Next(i int) []int { return g.next[i] }

// findCycle returns the names along one cycle, or nil.
func (g *Graph) findCycle() []string {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(g.names))
	parent := make([]int, len(g.names))
	var cycle []string
	var visit func(i int) bool
	visit = func(i int) bool {
		color[i] = grey
		for _, j := range g.next[i] {
			switch color[j] {
			case grey:
				// Walk back from i to j to name the cycle in dependency order.
				path := []string{g.names[j]}
				for k := i; k != j; k = parent[k] {
					path = append(path, g.names[k])
				}
				for l, r := 0, len(path)-1; l < r; l, r = l+1, r-1 {
					path[l], path[r] = path[r], path[l]
				}
				cycle = append([]string{g.names[j]}, path...)
				return true
			case white:
				parent[j] = i
				if visit(j) {
					return true
				}
			}
		}
		color[i] = black
		return false
	}
	for i := range g.names {
		if color[i] == white && visit(i) {
			return cycle
		}
	}
	return nil
}
