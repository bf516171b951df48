//! The Domain NV appliance: voter, links, configuration and status.
