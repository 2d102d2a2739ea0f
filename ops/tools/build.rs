include!("../../scripts/torch-link.rs");
