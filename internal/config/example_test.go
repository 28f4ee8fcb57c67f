package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// exampleSetting is a commented-out setting of example.yaml: "# key: …" or "# - key: …"
// at the indentation it has when the "# " is removed.
var exampleSetting = regexp.MustCompile(`^(\s*)# (\s*(- )?[a-z_]+:( .*)?)$`)

// exampleVariants returns Example as shipped, then once per block of consecutive
// commented-out settings with that block turned on, by the block's first line and its number.
func exampleVariants() map[string]string {
	lines := strings.Split(Example, "\n")
	out := map[string]string{"as shipped": Example}
	for i := 0; i < len(lines); i++ {
		if !exampleSetting.MatchString(lines[i]) {
			continue
		}
		on := append([]string(nil), lines...)
		first := fmt.Sprintf("line %d: %s", i+1, strings.TrimSpace(lines[i]))
		for ; i < len(lines) && exampleSetting.MatchString(lines[i]); i++ {
			m := exampleSetting.FindStringSubmatch(lines[i])
			on[i] = m[1] + m[2]
		}
		out[first] = strings.Join(on, "\n")
	}
	return out
}

// TestExampleIsValid: `snapfleet config example` passes `config check` as shipped, and
// with each of its optional settings turned on.
func TestExampleIsValid(t *testing.T) {
	t.Parallel()
	vs := exampleVariants()
	if len(vs) < 5 {
		t.Fatalf("example has %d variants; its commented-out settings are not recognised", len(vs))
	}
	for name, doc := range vs {
		if _, err := Parse(strings.NewReader(doc)); err != nil {
			t.Errorf("example with %q: %v", name, err)
		}
	}
}

// TestExampleNamesEveryKey: every key of Config's YAML — each field's yaml tag, nested —
// is in the example, on or commented out, so that the example cannot drift from the code.
func TestExampleNamesEveryKey(t *testing.T) {
	t.Parallel()
	have := map[string]bool{}
	index := regexp.MustCompile(`\[[0-9]+\]`)
	for name, doc := range exampleVariants() {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
			t.Fatalf("example with %q: %v", name, err)
		}
		for _, p := range places(&n) {
			have[index.ReplaceAllString(p.path, "[]")] = true
		}
	}
	want := configKeys(t)
	for _, k := range []string{"regions", "accounts[].external_id", "accounts.organization.include_ous",
		"policies[].retain.keep_yearly", "limits.describe_snapshots.per_second", "events.bus"} {
		if !want[k] {
			t.Fatalf("the struct walk misses %s: %v", k, want)
		}
	}
	for k := range want {
		if !have[k] {
			t.Errorf("key %s is not in example.yaml", k)
		}
	}
}

// configKeys lists the key paths Config decodes, lists as "[]".
func configKeys(t *testing.T) map[string]bool {
	out := map[string]bool{}
	var walk func(typ reflect.Type, prefix string)
	walk = func(typ reflect.Type, prefix string) {
		for typ.Kind() == reflect.Pointer {
			typ = typ.Elem()
		}
		switch typ.Kind() {
		case reflect.Slice:
			walk(typ.Elem(), prefix+"[]")
		case reflect.Struct:
			for i := 0; i < typ.NumField(); i++ {
				f := typ.Field(i)
				name := strings.Split(f.Tag.Get("yaml"), ",")[0]
				if name == "" || name == "-" {
					continue
				}
				p := strings.TrimPrefix(prefix+"."+name, ".")
				out[p] = true
				walk(f.Type, p)
			}
		}
	}
	walk(reflect.TypeOf(Config{}), "")
	// The accounts key is decoded by accountsYAML into these two fields.
	for i, typ := 0, reflect.TypeOf(Config{}); i < typ.NumField(); i++ {
		switch f := typ.Field(i); {
		case f.Tag.Get("yaml") != "-":
		case f.Name == "Accounts":
			out["accounts"] = true
			walk(f.Type, "accounts")
		case f.Name == "Organization":
			out["accounts.organization"] = true
			walk(f.Type, "accounts.organization")
		default:
			t.Fatalf("Config.%s is not decoded by its yaml tag: say here under which key it is read", f.Name)
		}
	}
	return out
}
