package main

import (
	"fmt"
	"os"
	"strings"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
)

// imdsNoRole is the end of the SDK's default credential chain: it asks the EC2 instance
// metadata for a role only once the environment, the shared files' profile, SSO, web
// identity and container credentials gave none. The SDK has no error type for it.
const imdsNoRole = "no EC2 IMDS role found"

// noCredentials is the SDK's error when its default chain found no credentials at all,
// said in one line: where it looked, and what to set.
type noCredentials struct{ err error }

func (e noCredentials) Unwrap() error { return e.err }

func (e noCredentials) Error() string {
	profile := envOr("AWS_PROFILE", "default")
	cfgFile := envOr("AWS_CONFIG_FILE", awsconfig.DefaultSharedConfigFilename())
	credFile := envOr("AWS_SHARED_CREDENTIALS_FILE", awsconfig.DefaultSharedCredentialsFilename())
	return fmt.Sprintf("no AWS credentials found: looked in the environment (AWS_ACCESS_KEY_ID), "+
		"profile %q of %s and %s (keys, SSO, role, credential_process), web identity, "+
		"and container and EC2 instance roles; set AWS_PROFILE to a profile with credentials, "+
		"or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and AWS_REGION", profile, cfgFile, credFile)
}

// missingRegion is the SDK's endpoint resolver's error when no region is set.
const missingRegion = "Invalid Configuration: Missing Region"

// noRegion is the SDK's error for a missing region, said in one line.
type noRegion struct{ err error }

func (e noRegion) Unwrap() error { return e.err }

func (e noRegion) Error() string {
	return fmt.Sprintf("no AWS region: set AWS_REGION, or region in profile %q of %s (regions: in the config chooses what is planned; the SDK's region is still needed)",
		envOr("AWS_PROFILE", "default"), envOr("AWS_CONFIG_FILE", awsconfig.DefaultSharedConfigFilename()))
}

// explainAWSSetup replaces the SDK's chain of errors for missing credentials with
// noCredentials, and for a missing region with noRegion; any other error, a role that
// cannot be assumed too, is left as it is.
func explainAWSSetup(err error) error {
	switch {
	case err == nil:
		return nil
	case strings.Contains(err.Error(), imdsNoRole):
		return noCredentials{err}
	case strings.Contains(err.Error(), missingRegion):
		return noRegion{err}
	}
	return err
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
