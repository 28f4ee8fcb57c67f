package config

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// nodeError is a decoding error at one node of the document; Parse names its key.
type nodeError struct {
	line, column int
	msg          string
}

func (e *nodeError) Error() string { return fmt.Sprintf("line %d: %s", e.line, e.msg) }

// place is a node of the document and the key path that reaches it
// (policies[0].retain.max_age).
type place struct {
	line, column int
	path         string
	key          bool // a mapping key; path names its entry
	kind         yaml.Kind
	value        string
}

// places lists every key and value of doc in document order, aliases not followed.
func places(doc *yaml.Node) []place {
	var out []place
	var walk func(n *yaml.Node, path string)
	walk = func(n *yaml.Node, path string) {
		if n == nil {
			return
		}
		if n.Kind != yaml.DocumentNode {
			out = append(out, place{line: n.Line, column: n.Column, path: path, kind: n.Kind, value: n.Value})
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, path)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				p := k.Value
				if path != "" {
					p = path + "." + k.Value
				}
				out = append(out, place{line: k.Line, column: k.Column, path: p, key: true, kind: k.Kind, value: k.Value})
				walk(n.Content[i+1], p)
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				walk(c, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(doc, "")
	return out
}

var (
	unknownFieldRE = regexp.MustCompile("^line ([0-9]+): field (.*) not found in type ")
	fieldTwiceRE   = regexp.MustCompile("^line ([0-9]+): field (.*) already set in type ")
	keyTwiceRE     = regexp.MustCompile(`^line ([0-9]+): mapping key "(.*)" already defined at line ([0-9]+)$`)
	unmarshalRE    = regexp.MustCompile("(?s)^line ([0-9]+): cannot unmarshal (!![a-z]+)(?: `(.*)`)? into (.+)$")
)

// keyed rewrites a decoding error as one line that names the key: yaml.v3 gives only a
// line and a Go type, e.g. "line 3: field bogus not found in type config.Retain" becomes
// "line 3: policies[0].retain.bogus: unknown key".
func keyed(err error, doc *yaml.Node) error {
	ps := places(doc)
	used := make([]bool, len(ps))
	// find returns the path of the first unused place on line that ok accepts, the
	// document itself (path "") only when no key's place does.
	find := func(line int, ok func(place) bool) (string, bool) {
		for _, root := range []bool{false, true} {
			for i, p := range ps {
				if !used[i] && p.line == line && (p.path == "") == root && ok(p) {
					used[i] = true
					return p.path, true
				}
			}
		}
		return "", false
	}
	var ne *nodeError
	if errors.As(err, &ne) {
		if path, ok := find(ne.line, func(p place) bool { return !p.key && p.column == ne.column }); ok && path != "" {
			return oneLine(fmt.Sprintf("line %d: %s: %s", ne.line, path, ne.msg))
		}
		return oneLine(ne.Error())
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return oneLine(err.Error())
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, e := range te.Errors {
		msgs = append(msgs, keyedEntry(e, find))
	}
	return oneLine(strings.Join(msgs, "; "))
}

// keyedEntry rewrites one of yaml.v3's type errors; one it does not know stays as it is.
func keyedEntry(e string, find func(int, func(place) bool) (string, bool)) string {
	// named puts the path of the place find finds, or fallback, after "line N: ".
	named := func(lineStr, fallback, msg string, ok func(place) bool) string {
		line, _ := strconv.Atoi(lineStr)
		path, found := find(line, ok)
		if !found || path == "" {
			path = fallback
		}
		if path == "" {
			return fmt.Sprintf("line %d: %s", line, msg)
		}
		return fmt.Sprintf("line %d: %s: %s", line, path, msg)
	}
	isKey := func(name string) func(place) bool {
		return func(p place) bool { return p.key && p.value == name }
	}
	if m := unknownFieldRE.FindStringSubmatch(e); m != nil {
		return named(m[1], m[2], "unknown key", isKey(m[2]))
	}
	if m := fieldTwiceRE.FindStringSubmatch(e); m != nil {
		return named(m[1], m[2], "set twice", isKey(m[2]))
	}
	if m := keyTwiceRE.FindStringSubmatch(e); m != nil {
		return named(m[1], m[2], "already defined at line "+m[3], isKey(m[2]))
	}
	if m := unmarshalRE.FindStringSubmatch(e); m != nil {
		tag, value, into := m[2], m[3], m[4]
		got := tag
		if value != "" {
			got += " `" + value + "`"
		}
		return named(m[1], "", fmt.Sprintf("cannot unmarshal %s into %s", got, typeName(into)), func(p place) bool {
			switch {
			case p.key:
				return false
			case tag == "!!map":
				return p.kind == yaml.MappingNode
			case tag == "!!seq":
				return p.kind == yaml.SequenceNode
			case strings.HasSuffix(value, "..."):
				return p.kind == yaml.ScalarNode && strings.HasPrefix(p.value, strings.TrimSuffix(value, "..."))
			}
			return p.kind == yaml.ScalarNode && p.value == value
		})
	}
	return e
}

// typeName says in words what a Go type of the config holds.
func typeName(t string) string {
	t = strings.TrimLeft(t, "*")
	switch {
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map["), strings.HasPrefix(t, "struct "), strings.HasPrefix(t, "struct{"), strings.HasPrefix(t, "config."):
		return "a mapping"
	case t == "bool":
		return "true or false"
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "an integer"
	case strings.HasPrefix(t, "float"):
		return "a number"
	}
	return "another type"
}

// oneLine keeps an error on one line: a multi-line scalar in a message is escaped.
func oneLine(msg string) error {
	return errors.New(strings.ReplaceAll(msg, "\n", `\n`))
}
