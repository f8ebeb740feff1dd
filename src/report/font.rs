//! A 3x5 pixel font (upper case, digits, a little punctuation) to label raster images: preview
//! grids and the loss histogram figure of the TensorBoard logs.

/// Each glyph: five rows of three pixels, top row first, `#` set.
const GLYPHS: &[(char, &str)] = &[
    ('A', ".#. #.# ### #.# #.#"),
    ('B', "##. #.# ##. #.# ##."),
    ('C', ".## #.. #.. #.. .##"),
    ('D', "##. #.# #.# #.# ##."),
    ('E', "### #.. ##. #.. ###"),
    ('F', "### #.. ##. #.. #.."),
    ('G', ".## #.. #.# #.# .##"),
    ('H', "#.# #.# ### #.# #.#"),
    ('I', "### .#. .#. .#. ###"),
    ('J', "..# ..# ..# #.# .#."),
    ('K', "#.# #.# ##. #.# #.#"),
    ('L', "#.. #.. #.. #.. ###"),
    ('M', "#.# ### #.# #.# #.#"),
    ('N', "##. #.# #.# #.# #.#"),
    ('O', ".#. #.# #.# #.# .#."),
    ('P', "##. #.# ##. #.. #.."),
    ('Q', ".#. #.# #.# ##. .##"),
    ('R', "##. #.# ##. #.# #.#"),
    ('S', ".## #.. .#. ..# ##."),
    ('T', "### .#. .#. .#. .#."),
    ('U', "#.# #.# #.# #.# ###"),
    ('V', "#.# #.# #.# #.# .#."),
    ('W', "#.# #.# ### ### #.#"),
    ('X', "#.# #.# .#. #.# #.#"),
    ('Y', "#.# #.# .#. .#. .#."),
    ('Z', "### ..# .#. #.. ###"),
    ('0', "### #.# #.# #.# ###"),
    ('1', ".#. ##. .#. .#. ###"),
    ('2', "##. ..# .#. #.. ###"),
    ('3', "##. ..# .#. ..# ##."),
    ('4', "#.# #.# ### ..# ..#"),
    ('5', "### #.. ##. ..# ##."),
    ('6', ".## #.. ### #.# ###"),
    ('7', "### ..# .#. .#. .#."),
    ('8', "### #.# ### #.# ###"),
    ('9', "### #.# ### ..# ##."),
    ('-', "... ... ### ... ..."),
    ('.', "... ... ... ... .#."),
    (',', "... ... ... .#. #.."),
    (':', "... .#. ... .#. ..."),
    ('[', "##. #.. #.. #.. ##."),
    (']', ".## ..# ..# ..# .##"),
    ('(', ".#. #.. #.. #.. .#."),
    (')', ".#. ..# ..# ..# .#."),
    ('/', "..# ..# .#. #.. #.."),
    ('+', "... .#. ### .#. ..."),
    ('=', "... ### ... ### ..."),
];

/// Pixels of `c` (upper-cased) as 15 booleans, row-major; unknown characters are blank.
fn glyph(c: char) -> [bool; 15] {
    let c = c.to_ascii_uppercase();
    let mut px = [false; 15];
    if let Some((_, rows)) = GLYPHS.iter().find(|g| g.0 == c) {
        for (p, ch) in px.iter_mut().zip(rows.chars().filter(|&c| c != ' ')) {
            *p = ch == '#';
        }
    }
    px
}

/// Horizontal advance of one character at `scale`.
pub fn advance(scale: usize) -> usize {
    4 * scale
}

/// Draws `text` into an RGB image (`width` pixels wide) with its top-left corner at `(x, y)`.
pub fn draw_text(img: &mut [u8], width: usize, x: usize, y: usize, text: &str, scale: usize, rgb: [u8; 3]) {
    let height = img.len() / 3 / width.max(1);
    for (k, c) in text.chars().enumerate() {
        let g = glyph(c);
        for (p, &on) in g.iter().enumerate() {
            if !on {
                continue;
            }
            let (gy, gx) = (p / 3, p % 3);
            for dy in 0..scale {
                for dx in 0..scale {
                    let (py, px) = (y + gy * scale + dy, x + k * advance(scale) + gx * scale + dx);
                    if py < height && px < width {
                        img[(py * width + px) * 3..(py * width + px) * 3 + 3].copy_from_slice(&rgb);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_glyph_has_fifteen_pixels() {
        for (c, rows) in GLYPHS {
            assert_eq!(rows.split(' ').map(str::len).collect::<Vec<_>>(), [3; 5], "{c}");
        }
    }

    #[test]
    fn text_is_drawn_inside_the_image() {
        let mut img = vec![0u8; 20 * 10 * 3];
        draw_text(&mut img, 20, 0, 0, "HI-9 and more text past the edge", 2, [255, 255, 255]);
        assert!(img.contains(&255));
    }
}
