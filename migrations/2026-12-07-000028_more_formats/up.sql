-- Images read by OCR, and the office formats beside DOCX: spreadsheets
-- (xlsx, ods), slides (pptx), e-books (epub) and OpenDocument text (odt).
ALTER TABLE documents DROP CONSTRAINT documents_format_check;
ALTER TABLE documents ADD CONSTRAINT documents_format_check
    CHECK (format IN ('text', 'markdown', 'html', 'pdf', 'docx', 'image', 'xlsx', 'ods', 'pptx', 'epub', 'odt'));
