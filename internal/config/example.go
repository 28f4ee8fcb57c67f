package config

import _ "embed"

// Example is a config with every key, commented: what `snapfleet config example` prints.
// Its optional settings are commented out; the tests check that it is valid as it is and
// with each of them turned on, and that it names every key of Config.
//
//go:embed example.yaml
var Example string
