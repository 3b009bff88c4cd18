/* no_header.c - a stress program without its sources line: tools/sanitize must refuse it by name. */
/* SPDX-License-Identifier: Apache-2.0 */
int main(void)
{
    return 0;
}
