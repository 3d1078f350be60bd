//! `stylemap inspect FILE`: what the library can tell about a weights file
//! or a pack (told apart by the pack's magic bytes).

use std::fmt::Write as _;
use std::io::Write;

use stylemap::core::Operand;
use stylemap::pack::Precision;

use crate::cli::InspectArgs;
use crate::error::{Failure, Result};

pub fn run(args: &InspectArgs) -> Result<()> {
    let text = if stylemap::pack::is_pack_file(&args.file)? {
        describe_pack(&stylemap::load_pack(&args.file)?)
    } else {
        stylemap::inspect(&args.file)?.to_string()
    };
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{text}")
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::msg(format!("cannot write to stdout: {e}")))
}

fn describe_pack(p: &stylemap::PackNetwork) -> String {
    let pack = p.pack();
    let s = pack.spec();
    let mut t = String::new();
    let _ = writeln!(t, "file:           {}", p.path().display());
    let _ = writeln!(
        t,
        "format:         stylemap pack v{} (little-endian), CRC-32 {:#010x} (valid)",
        pack.version(),
        pack.checksum()
    );
    let precision = match (pack.precision(), pack.int8_group()) {
        (Precision::Int8, Some(g)) => format!(
            "int8, f32 scale per row and group of {g} inputs, panels of {} rows",
            stylemap::core::kernels::quant::QNR
        ),
        (Precision::F32, _) => "f32, folded row-major".into(),
        (p, _) => format!(
            "{p}, panels of {} rows",
            stylemap::core::kernels::quant::QNR
        ),
    };
    let _ = writeln!(t, "precision:      {precision}");
    let _ = writeln!(t, "z_dim:          {}", s.z_dim);
    if s.c_dim == 0 {
        let _ = writeln!(t, "c_dim:          0 (unconditional)");
    } else {
        let _ = writeln!(
            t,
            "c_dim:          {} (conditional, embedding width {})",
            s.c_dim, s.embed_features
        );
    }
    let _ = writeln!(t, "w_dim:          {}", s.w_dim);
    let _ = writeln!(
        t,
        "layers:         {} fully connected, hidden width {}, {:?}",
        s.num_layers, s.layer_features, s.activation
    );
    let _ = writeln!(t, "num_ws:         {}", s.num_ws);
    let _ = writeln!(
        t,
        "lr_multiplier:  {} (folded into the weights)",
        s.lr_multiplier
    );
    let _ = writeln!(t, "sections:       offset      bytes  name");
    let (mut weights, mut biases, mut scales, mut other) = (0usize, 0usize, 0usize, 0usize);
    for sec in pack.sections() {
        let _ = writeln!(
            t,
            "              {:>9} {:>10}  {}",
            sec.offset, sec.len, sec.what
        );
        match sec.what {
            Operand::FcWeight(_) | Operand::EmbedWeight | Operand::Params => weights += sec.len,
            Operand::FcBias(_) | Operand::EmbedBias => biases += sec.len,
            Operand::FcScales(_) | Operand::EmbedScales => scales += sec.len,
            _ => other += sec.len,
        }
    }
    let padding = pack.len() - weights - biases - scales - other;
    let _ = write!(
        t,
        "total:          {} bytes (weights {weights}, biases {biases}, scales {scales}, \
         w_avg {other}, header and padding {padding})",
        pack.len()
    );
    t
}
