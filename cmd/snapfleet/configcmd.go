package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/snapfleet/snapfleet/internal/config"
)

// newConfigCmd is `snapfleet config check` and `snapfleet config example`: neither makes
// an AWS call.
func newConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check a config file, or print an example with every key (no AWS call)",
	}
	check := &cobra.Command{
		Use:   "check",
		Short: "Parse and validate --config F: exit 0, or 2 with the key at fault",
		RunE: func(*cobra.Command, []string) error {
			if g.configPath == "" {
				return usagef("config check: --config F is required")
			}
			c, err := config.Load(g.configPath)
			if err != nil {
				return usageError{err}
			}
			res := summarizeConfig(g.configPath, c)
			if g.output == "json" {
				return g.printJSON(res)
			}
			_, err = fmt.Fprintln(g.stdout, res)
			return err
		},
	}
	check.Flags().StringVar(&g.configPath, "config", "", "config file (YAML) to check")
	example := &cobra.Command{
		Use:   "example",
		Short: "Print a commented config with every key (e.g. > snapfleet.yaml)",
		RunE: func(*cobra.Command, []string) error {
			_, err := io.WriteString(g.stdout, config.Example)
			return err
		},
	}
	cmd.AddCommand(check, example)
	return cmd
}

// configSummary is what `config check` says of a valid config.
type configSummary struct {
	Config       string   `json:"config"`
	Policies     []string `json:"policies"`
	Accounts     int      `json:"accounts"`
	Organization bool     `json:"organization"`
	Regions      []string `json:"regions"`
}

func summarizeConfig(path string, c *config.Config) configSummary {
	s := configSummary{Config: path, Policies: []string{}, Accounts: len(c.Accounts),
		Organization: c.Organization != nil, Regions: append([]string{}, c.Regions...)}
	for _, p := range c.Policies {
		s.Policies = append(s.Policies, p.Name)
	}
	return s
}

func (s configSummary) String() string {
	accounts := plural(s.Accounts, "account")
	switch {
	case s.Organization:
		accounts = "accounts from the organization"
	case s.Accounts == 0:
		accounts = "the caller's own account"
	}
	regions := "the SDK's region"
	if len(s.Regions) > 0 {
		regions = plural(len(s.Regions), "region") + " (" + strings.Join(s.Regions, ", ") + ")"
	}
	return fmt.Sprintf("config %s: OK: %s (%s), %s, %s", s.Config,
		plural(len(s.Policies), "policy"), strings.Join(s.Policies, ", "), accounts, regions)
}

// plural is "1 policy", "2 policies", "3 accounts".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "y") {
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(noun, "y"))
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
