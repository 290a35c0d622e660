NAME        
ROWS
 N  Obj     
 E  r0      
 E  r1      
 G  r2      
 G  r3      
 G  r4      
 G  r5      
 G  r6      
 L  r7      
 L  r8      
 L  r9      
 L  r10     
 L  r11     
 L  r12     
 E  r13     
COLUMNS
    MARK0000  'MARKER'                 'INTORG'
    c0        r0        1
    c0        r2        1
    c0        r8        -1
    c0        r13       -0.12782766974847154
    c1        r0        1
    c1        r3        1
    c1        r4        -1
    c1        r7        -1
    c1        r11       -1
    c1        r13       -0.27188579383831812
    c2        r1        1
    c2        r2        -1
    c2        r9        -1
    c2        r13       -0.24896274713364788
    c3        r1        1
    c3        r3        -1
    c3        r5        -1
    c3        r10       -1
    c3        r11       -1
    c3        r13       -0.99999999999999989
    c4        r1        1
    c4        r6        -1
    c4        r12       -1
    MARK0001  'MARKER'                 'INTEND'
    c5        r2        1
    c5        r7        1
    c5        r9        1
    c5        r13       -0.092850678748853804
    c6        r3        1
    c6        r8        1
    c6        r10       1
    c6        r13       -0.07542169871394494
    c7        r4        1
    c7        r5        1
    c7        r11       1
    c7        r13       -0.056157476236678813
    c8        r6        1
    c8        r12       1
    c8        r13       -0.1141000441057233
    c9        Obj       1
    c9        r13       0.99999999999999989
RHS
    RHS_V     r0        1
    RHS_V     r1        1
BOUNDS
 BV BOUND     c0      
 BV BOUND     c1      
 BV BOUND     c2      
 BV BOUND     c3      
 BV BOUND     c4      
 UP BOUND     c5        1
 UP BOUND     c6        1
 UP BOUND     c7        1
 UP BOUND     c8        1
ENDATA
